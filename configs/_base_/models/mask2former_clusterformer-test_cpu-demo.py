# mmdet's stock Mask2Former (Mask2FormerHead, masked-attention decoder,
# softmax classes with a no-object class, MaskFormerFusionHead) on the CPU
# demos' `test` ClusterFormer backbone, as wide and deep as our demo heads:
# 64 wide, 20 queries, 6 decoder layers, 1024 loss points; instance
# segmentation. The stock-head comparison configs of the instance and
# panoptic demos start from it (docs/en/head_comparison.md).
_base_ = './clusterformer-test_cpu-demo.py'

num_things_classes = 4
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
embed_dims = 64  # the demo decoders' width (a number: it is divided below)

model = dict(
    type='Mask2Former',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=False),
    # the demo's `test` backbone; Mask2FormerHead takes the four maps only
    backbone=dict(type='ClusterFormer', arch='test', out_indices=(0, 1, 2, 3),
                  out_centers=False, drop_path_rate=0.0),
    panoptic_head=dict(
        type='Mask2FormerHead',
        in_channels={{_base_.backbone_channels}},
        strides=[4, 8, 16, 32],
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=20,
        num_transformer_feat_level=3,
        pixel_decoder={{_base_.pixel_decoder}},
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
        transformer_decoder=dict(  # Mask2FormerTransformerDecoder
            return_intermediate=True,
            num_layers=6,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4, dropout=0.0,
                                   batch_first=True),
                cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4, dropout=0.0,
                                    batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128, num_fcs=2,
                             ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                      reduction='mean', class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=5.0),
        loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True,
                       reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='MaskFormerFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=dict(
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
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        panoptic_on=False,
        semantic_on=False,
        instance_on=True,
        max_per_image=80,  # all 20 x 4 (query, class) pairs (mmdet's topk needs <=)
        iou_thr=0.8,
        filter_low_score=True),
    init_cfg=None)
