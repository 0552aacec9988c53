# ClusterFormer-Small on ImageNet-1K, §4.1.1 (same recipe as the tiny config).
_base_ = 'mmpretrain::swin_transformer/swin-small_16xb64_in1k.py'

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ClusterFormer',
        arch='small',
        num_centers=100,
        num_iters=3,
        head_dim=32,
        out_indices=(3, ),
        out_centers=True,
        drop_path_rate=0.3),
    neck=dict(_delete_=True, type='ClusterCenterNeck'),
    head=dict(in_channels=768))

optim_wrapper = dict(optimizer=dict(lr=1e-3))
auto_scale_lr = dict(base_batch_size=1024)
