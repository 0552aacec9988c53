# mmdet's stock Mask2Former head (Mask2FormerHead: MSDeformAttn pixel decoder,
# masked-attention transformer decoder, softmax classes with a no-object
# class) as wide and deep as our CPU demo heads: 64 wide, 20 queries, 6
# decoder layers of 4 heads (FFN 128), its losses on 1024 points per mask.
# Shared by mmdet's Mask2Former of the instance and panoptic demos
# (./mask2former_clusterformer-test_cpu-demo.py) and mmseg's wrapper of the
# head on CamVid, which builds it in mmdet's scope (`_scope_='mmdet'`), so the
# types here are mmdet's names. The models add what they own: the backbone's
# widths (in_channels), the demos' pixel decoder (`_base_.pixel_decoder`),
# the class counts and loss_cls's class_weight ([1.0] per class + [0.1] for
# no-object), e.g. `dict(_base_.mask2former_head, in_channels=...)`, and drop
# these helpers after use (`del _base_.mask2former_head,
# _base_.mask2former_train_cfg`).
mask2former_head = dict(
    type='Mask2FormerHead',
    strides=[4, 8, 16, 32],
    feat_channels=64,
    out_channels=64,
    num_queries=20,
    num_transformer_feat_level=3,
    enforce_decoder_input_project=False,
    positional_encoding=dict(num_feats=32, normalize=True),
    transformer_decoder=dict(  # Mask2FormerTransformerDecoder
        return_intermediate=True,
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=64, num_heads=4, dropout=0.0, batch_first=True),
            cross_attn_cfg=dict(embed_dims=64, num_heads=4, dropout=0.0, batch_first=True),
            ffn_cfg=dict(embed_dims=64, feedforward_channels=128, num_fcs=2, ffn_drop=0.0,
                         act_cfg=dict(type='ReLU', inplace=True))),
        init_cfg=None),
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                  reduction='mean'),
    loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                   loss_weight=5.0),
    loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True,
                   reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0))
# Hungarian matching on the class and mask costs, the mask losses on 1024
# points, 3x oversampled, 75% of them where the prediction is least certain
mask2former_train_cfg = dict(
    num_points=1024,
    oversample_ratio=3.0,
    importance_sample_ratio=0.75,
    assigner=dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type='ClassificationCost', weight=2.0),
            dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
        ]),
    sampler=dict(type='MaskPseudoSampler'))
