# CPU demo: the 'test' ClusterFormer with the ClusterFormer decode head on the
# embedded "shapes" semantic split (7 classes, 64x64 images; make it with
# `python tools/dataset/make_shapes.py --out data/shapes`). Same head design as
# the ADE20K configs (pixel decoder, 6 RCA decoder layers with T=3, centers
# from the encoder, CE x5 + dice x1, deep supervision), narrower (64 wide).
# Trains through the stock runner in a few minutes on a CPU (1000 iterations of
# 8 images, about 0.3 s each on one core); tiny models run fastest with
# OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../_base_/models/clusterformer-test_cpu-demo.py',
    '../_base_/datasets/shapes_semantic.py',
]

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

num_classes = 7

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
    backbone={{_base_.backbone}},
    decode_head=dict(
        type='ClusterFormerHead',
        in_channels={{_base_.backbone_channels}},
        in_index=[0, 1, 2, 3],
        channels={{_base_.embed_dims}},
        num_classes=num_classes,
        pixel_decoder={{_base_.pixel_decoder}},
        transformer_decoder={{_base_.transformer_decoder}},
        center_init='encoder',
        num_encoder_centers={{_base_.num_encoder_centers}},
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

max_iters = 1000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        'center_pos': dict(decay_mult=0.0),
        'center_mix': dict(decay_mult=0.0),
        'logit_scale': dict(decay_mult=0.0)}))
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
