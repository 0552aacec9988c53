# mmdet's stock Mask R-CNN (FPN) with ClusterFormer-Tiny in place of Swin-T:
# everything (neck, heads, data, 1x schedule, AdamW 1e-4) comes from mmdet's
# Swin config; only the backbone is swapped. ClusterFormer returns Swin-T's
# four NCHW maps (96, 192, 384, 768 channels, strides 4-32), so the FPN neck
# inherited from that config takes them as they are.
# The backbone trains from scratch, not from mmdet's Swin-T ImageNet weights
# (its `pretrained`, set to None below); for ImageNet-1K ClusterFormer-Tiny
# weights see ../_base_/models/clusterformer-tiny_downstream.py.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/models/clusterformer-tiny_downstream.py',
]

pretrained = None  # not Swin-T's weights (mmdet's): from scratch, see the header

# the Swin-T recipe's stochastic depth
model = dict(backbone=dict(_base_.backbone, _delete_=True, drop_path_rate=0.2))
del _base_.backbone, _base_.backbone_with_centers  # taken into model.backbone
