# Table 6a (key components), row "+ Recurrent Cross-Attention Clustering"
# (paper: 26.27M, top-1 80.57): recurrent cross-attention clustering (Eq. 3)
# without feature dispatching (Eq. 6).
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(with_dispatch=False))
