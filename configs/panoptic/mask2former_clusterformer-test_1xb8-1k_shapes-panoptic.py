# The head users would pick instead of ours, on the panoptic demo: mmdet's
# stock Mask2Former panoptic model (Mask2FormerHead, masked-attention
# decoder, softmax classes with a no-object class, MaskFormerFusionHead) on
# the same `test` ClusterFormer backbone, data, schedule, optimizer and seed
# as clusterformer-test_1xb8-1k_shapes-panoptic.py, and the same decoder
# size as our head: 64 wide, 23 queries (our 20 thing + 3 stuff centers),
# 6 decoder layers, 1024 loss points. mmdet's fusion head has no semantic
# output, so mIoU_pan is not scored.
# tools/analysis/compare_heads.py trains both over seeds and prints the table.
_base_ = './clusterformer-test_1xb8-1k_shapes-panoptic.py'

num_things_classes = 4
num_stuff_classes = 3
num_classes = num_things_classes + num_stuff_classes
embed_dims = 64  # the demo decoders' width

model = dict(
    _delete_=True,
    type='Mask2Former',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255),
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
        num_queries=23,  # ours: 20 thing + 3 stuff centers
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
        panoptic_on=True,
        semantic_on=False,  # not implemented by MaskFormerFusionHead
        instance_on=True,
        max_per_image=100,
        iou_thr=0.8,
        filter_low_score=True),
    init_cfg=None)

data_root = '{{fileDirname}}/../../data/shapes/coco/'
val_evaluator = [
    dict(type='PanopticQualityMetric',
         ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'panoptic_val/'),
    dict(type='CocoMetric',  # mAP_pan^Th
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['segm']),
]
test_evaluator = val_evaluator
