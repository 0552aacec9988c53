# Table 6d (head dimension), row "head dim 40" (paper: 32.81M, top-1 82.21):
# head dimension 40 (heads fixed at 3/6/12/24, each 40 wide).
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(clustering_cfg=dict(head_dim=40)))
