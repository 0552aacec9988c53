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
    # the backbone (from scratch: pretrained = None) and our heads' pieces
    '../_base_/models/clusterformer-tiny_our-heads.py',
]

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
    backbone=_base_.backbone_with_centers,  # the head starts from its centers
    decode_head=dict(
        _base_.head_inputs,  # maps and encoder centers, decoder pieces
        type='ClusterFormerHead',
        in_index=[0, 1, 2, 3],
        channels=embed_dims,
        num_classes=num_classes,
        similarity='dot',
        deep_supervision=True,
        supervise_initial=True,
        align_corners=False,
        ignore_index=255,
        loss_decode=_base_.seg_losses),  # CE x5 + dice x1
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

# optimizer: AdamW (see above), no decay on norms, on the center embeddings and
# on the E-step temperatures (_base_/schedules/clusterformer_no-decay-keys.py)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys=_base_.no_decay_keys))
# the helpers of the bases, used above (no_decay stays: this config always had it)
del _base_.backbone, _base_.backbone_with_centers, _base_.head_inputs, _base_.no_decay_keys
del _base_.mask_matching, _base_.box_matching, _base_.seg_losses

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
