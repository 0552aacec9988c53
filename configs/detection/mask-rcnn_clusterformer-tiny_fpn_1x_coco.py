# mmdet's stock Mask R-CNN (FPN) with ClusterFormer-Tiny in place of Swin-T:
# everything (neck, heads, data, 1x schedule, AdamW 1e-4) comes from mmdet's
# Swin config; only the backbone is swapped. ClusterFormer returns Swin-T's
# four NCHW maps (96, 192, 384, 768 channels, strides 4-32), so the FPN neck
# inherited from that config takes them as they are.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# ImageNet-1K ClusterFormer-Tiny weights (a runner checkpoint of
# configs/classification/clusterformer-tiny_16xb64_in1k.py); None: scratch.
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusterFormer',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None),
    neck=dict(in_channels=[96, 192, 384, 768]))
