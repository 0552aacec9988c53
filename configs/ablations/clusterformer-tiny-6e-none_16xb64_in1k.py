# Table 6e (feature dispatching), row "None" (paper: 26.27M, top-1 80.57): no
# feature dispatching (the same model as 6a "+ RCA").
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(with_dispatch=False))
