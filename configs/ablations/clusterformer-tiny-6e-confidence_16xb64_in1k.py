# Table 6e (feature dispatching), row "Confidence-Based [68]" (paper: 26.81M,
# top-1 80.69): confidence-based dispatching [68]: each feature takes its
# arg-max center weighted by the assignment's confidence.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(dispatch_cfg=dict(mode='confidence')))
