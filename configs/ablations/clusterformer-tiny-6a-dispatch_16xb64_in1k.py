# Table 6a (key components), row "+ Feature Dispatching" (paper: 23.46M,
# top-1 78.58): feature dispatching (Eq. 6) from the Eq. 5 grid centers,
# without recurrent cross-attention clustering.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(with_clustering=False))
