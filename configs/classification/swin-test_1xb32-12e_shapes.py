# The comparison for the classification demo: mmpretrain's stock Swin
# Transformer with the widths and depths of the `test` ClusterFormer (32, 64,
# 128, 256; 1, 1, 2, 1 blocks; head width 16) and the same data, recipe and
# seed, with Swin's own GAP neck. docs/en/clustering.md compares them.
_base_ = './clusterformer-test_1xb32-12e_shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16]),
        img_size=64,
        window_size=4,  # 16x16 tokens in stage 1: 4x4 windows, as Swin-T's 7 at 224
        pad_small_map=True,  # stage 4 is 2x2
        out_indices=(3, ),
        drop_path_rate=0.0),
    neck=dict(_delete_=True, type='GlobalAveragePooling'))

find_unused_parameters = False
