# The schedule of the iteration-based detection, instance and panoptic CPU
# demos: 1000 iterations of AdamW (lr 5e-4, 100 warm-up iterations), gradient
# clipping, one validation at the end, no weight decay on embeddings and
# E-step temperatures. On top of mmdet's default runtime.
_base_ = 'mmdet::_base_/default_runtime.py'

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
        'center_mix': dict(decay_mult=0.0),
        'logit_scale': dict(decay_mult=0.0)}))
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
