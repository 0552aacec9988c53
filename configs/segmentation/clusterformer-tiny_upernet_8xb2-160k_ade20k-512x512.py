# mmseg's stock Swin-T UperNet ADE20K recipe with ONLY the backbone swapped to
# ClusterFormer-Tiny. Its stage widths (96, 192, 384, 768) equal Swin-T's, so
# UperNet's in_channels and the auxiliary FCN head (stage 3, 384 channels) are
# kept as they are; data, schedule (160k, AdamW 6e-5, poly) and losses are
# mmseg's. The backbone returns only its maps here (out_centers=False).
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/models/clusterformer-tiny_downstream.py',
]

# Not Swin-T's ImageNet weights (mmseg's `checkpoint_file`): the backbone
# trains from scratch; ../_base_/models/clusterformer-tiny_downstream.py says
# how to start it from ImageNet-1K ClusterFormer-Tiny weights.
pretrained = None

model = dict(backbone=dict(_base_.backbone, _delete_=True, out_centers=False))
del _base_.backbone, _base_.backbone_with_centers  # taken into model.backbone
