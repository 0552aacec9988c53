# CPU demo: the 'test' ClusterFormer with the ClusterFormer panoptic head on
# the embedded "shapes" COCO Panoptic split (64x64 scenes; things circle,
# cross, square, triangle; stuff sky, grass, bricks; make it with
# `python tools/dataset/make_shapes.py --out data/shapes`), scored with PQ
# (mmcf's PanopticQualityMetric, torchmetrics inside), mAP_pan^Th (CocoMetric,
# segm) and mIoU_pan (SemSegMetric), as Table 5.
# Same head design as the COCO Panoptic configs (MSDeformAttn pixel decoder,
# RCA decoder layers with T=3, thing + stuff centers from the encoder's
# centers, loss of Eq. 7 with lambda_th=5, lambda_st=3, lambda_aux=1 and the
# four MaX-DeepLab auxiliary terms), narrower (64 wide), 20 thing centers for
# scenes of at most 4 objects.
# Run with OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

data_root = 'data/shapes/coco/'
thing_classes = ('circle', 'cross', 'square', 'triangle')
stuff_classes = ('sky', 'grass', 'bricks')
embed_dims = 64

model = dict(
    type='ClusterFormerPanopticDetector',
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
    backbone=dict(
        type='ClusterFormer',
        arch='test',  # dims 32/64/128/256, 16 centers
        out_indices=(0, 1, 2, 3),
        out_centers=True,
        drop_path_rate=0.0),
    bbox_head=dict(
        type='ClusterFormerPanopticHead',
        in_channels=[32, 64, 128, 256],
        num_things_classes=len(thing_classes),
        num_stuff_classes=len(stuff_classes),
        num_queries=20,  # thing centers; one more center per stuff class
        feat_channels=embed_dims,
        pixel_decoder=dict(
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
            init_cfg=None),
        num_layers=6,
        num_iters=3,
        head_dim=16,
        num_heads=4,
        ffn_channels=128,
        center_init='encoder',
        num_encoder_centers=16,
        encoder_channels=256,
        lambda_th=5.0,  # Eq. 7
        lambda_st=3.0,
        lambda_aux=1.0,
        aux_losses=dict(  # MaX-DeepLab's weights; None switches a term off
            pq=dict(weight=3.0, alpha=0.75),
            mask_id=dict(weight=0.3),
            inst_disc=dict(weight=1.0, temperature=0.3, num_points=4096),
            semantic=dict(weight=1.0)),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=1.0),
        loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                       naive_dice=True, eps=1.0, loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
            ]),
        num_points=1024,  # the masks are at most 64x64 = 4096 pixels
        oversample_ratio=3.0,
        importance_sample_ratio=0.75),
    test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True, max_per_img=100,
                  object_mask_thr=0.5, iou_thr=0.8, mask_thr=0.5))

dataset_type = 'CocoPanopticDataset'
metainfo = dict(classes=thing_classes + stuff_classes, thing_classes=thing_classes,
                stuff_classes=stuff_classes)
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadCocoPanopticAnnotations', backend_args=backend_args),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadCocoPanopticAnnotations', backend_args=backend_args),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='panoptic_val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='PanopticQualityMetric',
         ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'panoptic_val/',
         backend_args=backend_args),
    dict(type='CocoMetric',  # mAP_pan^Th: thing masks of the panoptic model
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['segm'],
         backend_args=backend_args),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),  # mIoU_pan
]
test_evaluator = val_evaluator

max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        'query_pos': dict(decay_mult=0.0),
        'level_embed': dict(decay_mult=0.0),
        'center_mix': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500,
                    max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=8)
