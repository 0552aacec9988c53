# Table 6c (cluster center updating), row "Cosine Similarity" (paper: 23.88M,
# top-1 78.79): cosine-similarity center updating: the E-/M-step on the
# features and centers themselves, no q/k/v projections.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(clustering_cfg=dict(type='CosineClustering')))
