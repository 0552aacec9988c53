# The backbone users would pick instead of ours: mmdet's Swin Transformer of
# the widths and depths of the `test` ClusterFormer (32, 64, 128, 256
# channels; 1, 1, 2, 1 blocks; 2, 4, 8, 16 heads; Swin's own patch 4, window
# 7, MLP ratio 4) under the same stock Mask2Former, data and schedule as
# mask2former_clusterformer-test_1xb8-4k_pennfudan-128.py.
_base_ = './mask2former_clusterformer-test_1xb8-4k_pennfudan-128.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=32,
        depths=(1, 1, 2, 1),
        num_heads=(2, 4, 8, 16),
        patch_size=4,
        window_size=7,
        mlp_ratio=4,
        drop_path_rate=0.0,  # as the `test` ClusterFormer of the demos
        out_indices=(0, 1, 2, 3)))
