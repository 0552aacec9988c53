# The Penn-Fudan schedule (100 real photos, batch 8, 320 epochs): the CPU
# demos' AdamW (./shapes_adamw.py, lr 5e-4, weight decay 0.05, clipping at 1)
# for 4000 iterations, 100 warm-up iterations, the learning rate divided by
# 10 at 3000 and 3500 iterations (mmdet's step schedule at 75% and 87.5%),
# a validation every 500 iterations and a checkpoint at each (the last two
# kept). Probe runs without the decay stopped gaining val AP by about 3000
# iterations (docs/en/head_comparison.md).
_base_ = './shapes_1k-iters.py'

max_iters = 4000
train_cfg = dict(max_iters=max_iters, val_interval=500)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', milestones=[3000, 3500], gamma=0.1, by_epoch=False, begin=0,
         end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=500))
