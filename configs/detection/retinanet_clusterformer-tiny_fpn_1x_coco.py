# mmdet's stock RetinaNet (FPN) with ClusterFormer-Tiny in place of Swin-T:
# neck, head, data and schedule come from mmdet's Swin-T RetinaNet config.
# RetinaNet reads strides 8-32, so the backbone returns stages 1-3 and the
# FPN's in_channels are ClusterFormer-Tiny's widths of those stages
# (ClusterFormer.arch_out_channels('tiny', (1, 2, 3)) = [192, 384, 768];
# the table per arch is in docs/en/get_started.md).
# The backbone trains from scratch, not from mmdet's Swin-T ImageNet weights
# (its `pretrained`, set to None below); for ImageNet-1K ClusterFormer-Tiny
# weights see ../_base_/models/clusterformer-tiny_downstream.py.
_base_ = [
    'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/models/clusterformer-tiny_downstream.py',
]

pretrained = None  # not Swin-T's weights (mmdet's): from scratch, see the header

model = dict(
    backbone=dict(
        _base_.backbone,
        _delete_=True,
        out_indices=(1, 2, 3),  # only what the FPN reads, else unused parameters
        drop_path_rate=0.2),  # the Swin-T recipe's
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
del _base_.backbone, _base_.backbone_with_centers  # taken into model.backbone
