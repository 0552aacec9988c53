# Model pieces shared by the CPU demos of every task: the `test` ClusterFormer
# backbone (dims 32/64/128/256, 16 centers per block, head width 16) and the
# 64-wide decoder pieces of the detection, instance and panoptic heads (the
# COCO configs' design, narrower). Configs take them with
# `{{_base_.backbone}}`, `{{_base_.pixel_decoder}}` and
# `{{_base_.transformer_decoder}}`.
embed_dims = 64
backbone = dict(
    type='ClusterFormer',
    arch='test',
    out_indices=(0, 1, 2, 3),
    out_centers=True,  # the heads start from the encoder's centers (Table 6f)
    drop_path_rate=0.0)
# widths of the `test` arch's four outputs and its centers
backbone_channels = [32, 64, 128, 256]
num_encoder_centers = 16
pixel_decoder = dict(
    type='MSDeformAttnPixelDecoder',
    num_outs=3,
    norm_cfg=dict(type='GN', num_groups=8),
    act_cfg=dict(type='ReLU'),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=4, num_levels=3, num_points=4,
                im2col_step=64, dropout=0.0, batch_first=True, norm_cfg=None,
                init_cfg=None),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=128, num_fcs=2,
                ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
        init_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
    init_cfg=None)
# §3.3: six RCA decoder layers of T = 3 iterations
transformer_decoder = dict(
    num_layers=6,
    layer_cfg=dict(num_iters=3, head_dim=16, num_heads=4, ffn_channels=128))
