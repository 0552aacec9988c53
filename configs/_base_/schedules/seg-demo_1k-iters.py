# The schedule of the semantic CPU demos: 1000 iterations of the demos'
# AdamW at lr 1e-3 (./shapes_adamw.py), 100 linear warm-up iterations from
# lr 1e-4, then poly decay to 1e-5; a validation and a checkpoint every 250
# iterations (the last 2 kept, and the best mIoU). On top of mmseg's default
# runtime. ./seg-demo_2k-iters.py runs it for 2000 iterations.
_base_ = ['mmseg::_base_/default_runtime.py', './shapes_adamw.py']

max_iters = 1000
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
