# ClusterFormer-Tiny + ClusterFormer decode head on ADE20K, §4.1.3 / Table 3.
#
# Head (§3.3): MSDeformAttn pixel decoder, then 6 decoder layers, each one
# recurrent cross-attention clustering layer (Eq. 4, T=3) + self-attention +
# FFN; 150 class centers (one per ADE20K class) initialised from the encoder's
# cluster centers (Table 6f); per-pixel class scores from the pixel-center
# similarity; deep supervision of every layer and of the initial centers.
# Loss: cross-entropy x5 + dice x1 (§4.1.3).
#
# Schedule. The paper gives batch 16, lr 1e-5, and "50 epochs" in the text of
# §4.1.3 but 100 epochs in Table 3, the table whose numbers this config
# reproduces; the 50 looks carried over from detection (§4.1.2, Table 2, 50
# epochs). Both run, so we follow Table 3: 100 epochs x 20210 images / 16 =
# 126313 iterations (~ mmseg's usual 160k schedule for ADE20K at batch 16,
# which is 127 epochs). For the text's 50 epochs use
#   --cfg-options train_cfg.max_iters=63157 param_scheduler.0.end=63157
# lr 1e-5 is low next to Mask2Former's 1e-4 (backbone 1e-5) in mmseg, but it
# runs, so it is kept as stated, for the whole model (no backbone multiplier).
# Everything else follows mmseg's defaults for this kind of head (Mask2Former's
# ADE20K recipe): AdamW (wd 0.05), poly decay, gradient clipping, no weight
# decay on norms and on the center embeddings.
#
# Data (§4.1.3): random scale 0.5-2.0 of (2560, 640), 640x640 crops, flip,
# photometric distortion; test with the shorter side resized to 640, whole
# image, mIoU. 8 GPUs x 2 images = batch 16.
_base_ = [
    'mmseg::_base_/datasets/ade20k_640x640.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/models/clusterformer_coco-decoder.py',
]

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# ImageNet-1K ClusterFormer-Tiny weights from
# configs/classification/clusterformer-tiny_16xb64_in1k.py (a runner
# checkpoint; its backbone is read with prefix 'backbone.'). None trains the
# backbone from scratch.
pretrained = None

num_classes = 150
crop_size = (640, 640)
embed_dims = 256

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size,
    test_cfg=dict(size_divisor=32))

model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ClusterFormer',
        arch='tiny',
        num_centers=100,
        num_iters=3,
        head_dim=32,
        out_indices=(0, 1, 2, 3),
        out_centers=True,  # the head starts from the encoder's centers
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None),
    decode_head=dict(
        type='ClusterFormerHead',
        in_channels=[96, 192, 384, 768],
        in_index=[0, 1, 2, 3],
        channels=embed_dims,
        num_classes=num_classes,
        pixel_decoder={{_base_.pixel_decoder}},  # Mask2Former's
        transformer_decoder={{_base_.transformer_decoder}},  # §3.3
        center_init='encoder',  # Table 6f, "centers from encoder"
        num_encoder_centers=100,
        encoder_channels=768,
        similarity='dot',
        deep_supervision=True,
        supervise_initial=True,
        align_corners=False,
        ignore_index=255,
        loss_decode=[
            dict(type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
                 loss_weight=5.0, loss_name='loss_ce'),
            dict(type='DiceLoss', use_sigmoid=False, loss_weight=1.0,
                 loss_name='loss_dice'),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# CheckSegSize refuses a label map whose size differs from its image.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations', reduce_zero_label=True),
    dict(type='CheckSegSize'),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),  # shorter side 640
    dict(type='LoadSegAnnotations', reduce_zero_label=True),
    dict(type='CheckSegSize'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# optimizer
no_decay = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'center_pos': no_decay,
            'center_feat': no_decay,
            'center_mix': no_decay,
            'logit_scale': no_decay,  # the E-step temperatures
        }))

max_iters = 126313  # 100 epochs (Table 3) of 20210 images at batch 16
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000,
                    save_best='mIoU', max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))

# total batch 16 = 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)
