# ClusterFormer-Small: COCO Panoptic, §4.1.5, Table 5. Everything as the tiny
# config (head, loss of Eq. 7, recipe, learning-rate note) except the backbone
# depth (2, 2, 18, 2).
_base_ = './clusterformer-tiny_8xb2-lsj-50e_coco-panoptic.py'

# ImageNet-1K ClusterFormer-Small weights from
# configs/classification/clusterformer-small_16xb64_in1k.py; None trains the
# backbone from scratch.
pretrained = None

model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None))
