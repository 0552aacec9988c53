# The decoder pieces of the COCO and ADE20K heads (§3.3): Mask2Former's
# MSDeformAttn pixel decoder (6 encoder layers, 256 wide) and six RCA decoder
# layers of T = 3 iterations (head width 32, as the encoder). Configs take them
# with `{{_base_.pixel_decoder}}` and `{{_base_.transformer_decoder}}`.
embed_dims = 256
pixel_decoder = dict(
    type='MSDeformAttnPixelDecoder',
    num_outs=3,
    norm_cfg=dict(type='GN', num_groups=32),
    act_cfg=dict(type='ReLU'),
    encoder=dict(  # DeformableDetrTransformerEncoder
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(  # MultiScaleDeformableAttention
                embed_dims=embed_dims, num_heads=8, num_levels=3, num_points=4,
                im2col_step=64, dropout=0.0, batch_first=True, norm_cfg=None,
                init_cfg=None),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024, num_fcs=2,
                ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
        init_cfg=None),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
    init_cfg=None)
transformer_decoder = dict(
    num_layers=6,  # §3.3: six decoder layers
    layer_cfg=dict(
        num_heads=8,
        ffn_channels=2048,
        dropout=0.0,
        clustering_cfg=dict(
            num_iters=3,  # §3.3: 3 iterations per layer
            head_dim=32)))
