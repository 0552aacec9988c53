# The semantic CPU demos' schedule (./seg-demo_1k-iters.py) for 2000
# iterations: the same warm-up, poly decay to 1e-5 over iterations 100-2000;
# a validation and a checkpoint every 1000 iterations (the last one kept, and
# the best mIoU).
_base_ = './seg-demo_1k-iters.py'

max_iters = 2000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000, max_keep_ckpts=1))
