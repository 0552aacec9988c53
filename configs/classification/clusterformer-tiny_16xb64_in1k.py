# ClusterFormer-Tiny on ImageNet-1K, §4.1.1: 100 centers, T=3, head dim 32;
# 300 epochs, AdamW, lr 1e-3 with cosine annealing (after Swin's 20-epoch linear
# warm-up), total batch 1024 (16 GPUs x 64), cross-entropy. The paper follows
# mmcls' default Swin recipe, so everything else is inherited from it: the Swin
# ImageNet augmentation (RandomResizedCrop 224, flip, RandAugment, random
# erasing, Mixup 0.8 / CutMix 1.0) and its label-smoothed cross-entropy (0.1),
# the soft-target form of cross-entropy that Mixup/CutMix need.
_base_ = [
    'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
    '../_base_/models/clusterformer-tiny.py',
]

model = dict(
    # in place of Swin-T (Swin's drop-path rate): the last stage and its centers
    backbone=dict(_base_.backbone_with_centers, _delete_=True, out_indices=(3, ),
                  drop_path_rate=0.2),
    # §3.3: a single-layer MLP (the stock LinearClsHead) on the cluster centers
    neck=dict(_delete_=True, type='ClusterCenterNeck'),
    head=dict(in_channels=768))
del _base_.backbone, _base_.backbone_with_centers  # taken into model.backbone

# Swin's recipe: lr = 5e-4 * 1024 / 512 = 1e-3, as §4.1.1 states
# (Swin's no-decay keys are kept; the E-step temperatures join them)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(custom_keys={'.logit_scale': dict(decay_mult=0.0)}))
auto_scale_lr = dict(base_batch_size=1024)

# The §3.3 head reads only the last stage's cluster centers, so the last
# block's dispatching (Eq. 6), FFN and the stage-4 output norm get no
# gradient; DistributedDataParallel must be told (the GAP variant uses them).
find_unused_parameters = True
