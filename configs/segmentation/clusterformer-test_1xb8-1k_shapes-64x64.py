# CPU demo: the 'test' ClusterFormer with the ClusterFormer decode head on the
# embedded "shapes" semantic split (7 classes, 64x64 images; make it with
# `python tools/dataset/make_shapes.py --out data/shapes`). Same head design as
# the ADE20K configs (pixel decoder, 6 RCA decoder layers with T=3, centers
# from the encoder, CE x5 + dice x1, deep supervision), narrower (64 wide).
# Trains through the stock runner in a few minutes on a CPU (1000 iterations of
# 8 images, about 0.3 s each on one core); tiny models run fastest with
# OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

data_root = 'data/shapes/semantic'
classes = ('circle', 'cross', 'square', 'triangle', 'sky', 'grass', 'bricks')
palette = [[220, 20, 60], [255, 200, 0], [148, 0, 211], [0, 200, 200],
           [135, 206, 235], [34, 139, 34], [160, 82, 45]]
num_classes = len(classes)
embed_dims = 64

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32,
    test_cfg=dict(size_divisor=32))

model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ClusterFormer',
        arch='test',  # dims 32/64/128/256, 16 centers
        out_indices=(0, 1, 2, 3),
        out_centers=True,
        drop_path_rate=0.0),
    decode_head=dict(
        type='ClusterFormerHead',
        in_channels=[32, 64, 128, 256],
        in_index=[0, 1, 2, 3],
        channels=embed_dims,
        num_classes=num_classes,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder',
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
        align_corners=False,
        ignore_index=255,
        loss_decode=[
            dict(type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
                 loss_weight=5.0, loss_name='loss_ce'),
            dict(type='DiceLoss', use_sigmoid=False, loss_weight=1.0,
                 loss_name='loss_dice'),
        ]),
    train_cfg=dict(),
    # whole-image inference; slide inference: mode='slide', crop_size=(32, 32),
    # stride=(16, 16)
    test_cfg=dict(mode='whole'))

dataset_type = 'BaseSegDataset'
metainfo = dict(classes=classes, palette=palette)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegSize'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegSize'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 1000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        'center_pos': dict(decay_mult=0.0),
        'center_mix': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=250)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250, max_keep_ckpts=2,
                    save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
