# ClusterFormer-Small: COCO object detection (boxes only), §4.1.2, Table 2.
# The tiny detection config with the small backbone (depths 2, 2, 18, 2).
_base_ = './clusterformer-tiny-det_8xb2-lsj-50e_coco.py'

# ImageNet-1K ClusterFormer-Small weights; None trains from scratch.
pretrained = None

model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None))
