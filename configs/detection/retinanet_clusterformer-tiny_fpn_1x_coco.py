# mmdet's stock RetinaNet (FPN) with ClusterFormer-Tiny in place of Swin-T:
# neck, head, data and schedule come from mmdet's Swin-T RetinaNet config.
# RetinaNet reads strides 8-32, so the backbone returns stages 1-3 and the
# FPN's in_channels are ClusterFormer-Tiny's widths of those stages
# (ClusterFormer.arch_out_channels('tiny', (1, 2, 3)) = [192, 384, 768];
# the table per arch is in docs/en/get_started.md).
_base_ = 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# ImageNet-1K ClusterFormer-Tiny weights (a runner checkpoint of
# configs/classification/clusterformer-tiny_16xb64_in1k.py); None: scratch.
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusterFormer',
        arch='tiny',
        out_indices=(1, 2, 3),  # only what the FPN reads, else unused parameters
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
