# Table 6e (feature dispatching), row "Vanilla FC Layer" (paper: 27.14M,
# top-1 80.83): vanilla FC layer: one linear layer on the mean of the
# centers.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(dispatch_cfg=dict(mode='fc')))
