# mmdet's stock Mask2Former (panoptic, LSJ, 50 epochs) with ClusterFormer-Tiny
# in place of Swin-T: the head users would pick instead of ours, on our
# backbone (the paper's comparison of Table 5). Only the backbone is swapped;
# its widths equal Swin-T's. mmdet's panoptic evaluation needs panopticapi;
# scoring with mmcf's PanopticQualityMetric works without it.
# The backbone trains from scratch, not from mmdet's Swin-T ImageNet weights
# (its `pretrained`, set to None below); for ImageNet-1K ClusterFormer-Tiny
# weights see ../_base_/models/clusterformer-tiny_downstream.py.
_base_ = [
    'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
    '../_base_/models/clusterformer-tiny_downstream.py',
]

pretrained = None  # not Swin-T's weights (mmdet's): from scratch, see the header

model = dict(backbone=dict(_base_.backbone, _delete_=True))
del _base_.backbone, _base_.backbone_with_centers  # taken into model.backbone
