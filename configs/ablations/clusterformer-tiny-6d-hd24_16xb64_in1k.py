# Table 6d (head dimension), row "head dim 24" (paper: 22.88M, top-1 75.37):
# head dimension 24 (heads fixed at 3/6/12/24, each 24 wide).
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(clustering_cfg=dict(head_dim=24)))
