# The schedule of the iteration-based detection, instance and panoptic CPU
# demos: 1000 iterations of the demos' AdamW (./shapes_adamw.py) at lr 5e-4
# (100 warm-up iterations), with the level embeddings also free of weight
# decay, and one validation at the end. On top of mmdet's default runtime.
_base_ = ['mmdet::_base_/default_runtime.py', './shapes_adamw.py']

max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    paramwise_cfg=dict(custom_keys={'level_embed': dict(decay_mult=0.0)}))
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
