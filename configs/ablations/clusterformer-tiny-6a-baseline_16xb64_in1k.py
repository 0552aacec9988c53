# Table 6a (key components), row "Baseline" (paper: 21.73M, top-1 74.59):
# neither recurrent cross-attention clustering nor feature dispatching: the
# centers stay the Eq. 5 grid centers and the features never see them.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(with_clustering=False, with_dispatch=False))
