# Model pieces shared by the CPU demos of every task: the `test` ClusterFormer
# backbone (dims 32/64/128/256, 16 centers per block, head width 16) and the
# 64-wide decoder pieces of the detection, instance and panoptic heads: the
# COCO configs' design (./clusterformer_coco-decoder.py), narrower. Configs
# take them with `{{_base_.backbone}}`, `{{_base_.pixel_decoder}}` and
# `{{_base_.transformer_decoder}}`; the detection models (mmdet's) take
# `_base_.det_data_preprocessor` and drop it after use
# (`del _base_.det_data_preprocessor`), as the other demos drop it unused.
_base_ = './clusterformer_coco-decoder.py'

# ClusterFormer is mmcf's: a config that takes this base imports mmcf with it.
custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

embed_dims = 64
backbone = dict(
    type='ClusterFormer',
    arch='test',
    out_indices=(0, 1, 2, 3),
    out_centers=True,  # the heads start from the encoder's centers (Table 6f)
    drop_path_rate=0.0)
# the backbone users would pick instead: Swin of the same widths and depths
# (32, 64, 128, 256 channels; 1, 1, 2, 1 blocks; 2, 4, 8, 16 heads of width
# 16; Swin's own patch 4, window 7, MLP ratio 4); mmdet and mmseg both
# register mmcv-style `SwinTransformer`s with these arguments
swin_backbone = dict(
    type='SwinTransformer',
    embed_dims=32,
    depths=(1, 1, 2, 1),
    num_heads=(2, 4, 8, 16),
    patch_size=4,
    window_size=7,
    mlp_ratio=4,
    drop_path_rate=0.0,  # as the `test` ClusterFormer of the demos
    out_indices=(0, 1, 2, 3))
# widths of the `test` arch's four outputs and its centers
backbone_channels = [32, 64, 128, 256]
num_encoder_centers = 16
# the COCO pixel decoder, 64 wide: 2 encoder layers of 4 heads, FFN 128, 8 norm groups
pixel_decoder = dict(
    norm_cfg=dict(num_groups=8),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128))),
    positional_encoding=dict(num_feats=embed_dims // 2))
# the semantic and instance demos' pixel decoder: mmdet's FPN-style
# PixelDecoder (top-down over the four backbone levels to stride 4); the
# decoder layers cluster levels pooled from its output (§3.3, Eq. 4)
fpn_pixel_decoder = dict(
    type='mmdet.PixelDecoder',
    norm_cfg=dict(type='GN', num_groups=8),
    act_cfg=dict(type='ReLU'))
# §3.3: six RCA decoder layers of T = 3 iterations, 4 heads of width 16
transformer_decoder = dict(
    layer_cfg=dict(
        _delete_=True,
        num_heads=4,
        ffn_channels=128,
        clustering_cfg=dict(num_iters=3, head_dim=16)))
# the detection models' input: the 64x64 images scaled by mean 127.5 and std
# 64 (to about [-2, 2]), RGB, padded to a multiple of 32 with their masks
det_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    bgr_to_rgb=True,
    pad_size_divisor=32,
    pad_mask=True,
    mask_pad_value=0)
