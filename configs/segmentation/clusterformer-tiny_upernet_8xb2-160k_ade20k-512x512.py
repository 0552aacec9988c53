# mmseg's stock Swin-T UperNet ADE20K recipe with ONLY the backbone swapped to
# ClusterFormer-Tiny. Its stage widths (96, 192, 384, 768) equal Swin-T's, so
# UperNet's in_channels and the auxiliary FCN head (stage 3, 384 channels) are
# kept as they are; data, schedule (160k, AdamW 6e-5, poly) and losses are
# mmseg's. The backbone returns only its maps here (out_centers=False).
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# ImageNet-1K ClusterFormer-Tiny checkpoint (configs/classification/...), or None.
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusterFormer',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        out_centers=False,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None))
