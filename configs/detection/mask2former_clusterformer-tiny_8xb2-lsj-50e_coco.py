# mmdet's stock Mask2Former (instance segmentation, LSJ, 50 epochs) with
# ClusterFormer-Tiny in place of Swin-T: the head users would pick instead of
# ours, on our backbone (the paper's comparison of Tables 2 and 4). Only the
# backbone is swapped; its widths equal Swin-T's, so Mask2Former's
# in_channels stay [96, 192, 384, 768].
_base_ = 'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# ImageNet-1K ClusterFormer-Tiny weights, or None (scratch).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusterFormer',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]))
