# Table 6c (cluster center updating), row "Vanilla Cross-Attention [81]"
# (paper: 35.48M, top-1 79.67): vanilla cross-attention [81] (Eq. 1): softmax
# over the pixels, a query projection per iteration and an output projection.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(clustering_cfg=dict(type='VanillaCrossAttention')))
