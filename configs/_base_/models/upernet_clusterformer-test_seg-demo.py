# The head users would pick instead of ours on the semantic CPU demos:
# mmseg's stock UperNet (UPerHead + auxiliary FCNHead, cross-entropy, as in
# mmseg's upernet configs) on the same `test` ClusterFormer backbone and
# input as ./clusterformer-test_seg-demo.py, 64 channels wide as our head.
# BN instead of SyncBN: one process. The configs set the class count of both
# heads: `model = dict(decode_head=dict(num_classes=...),
# auxiliary_head=dict(num_classes=...))`.
_base_ = './clusterformer-test_seg-demo.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(out_centers=False),  # UPerHead takes the four maps only
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels={{_base_.backbone_channels}},
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels={{_base_.embed_dims}},
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=128,  # stage 3 of the `test` arch
        in_index=2,
        channels={{_base_.embed_dims}},
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
