# Table 6c (cluster center updating), row "K-Means [95]" (paper: 27.71M,
# top-1 80.96): k-means cross-attention [95]: hard arg-max assignment,
# gradient to the E-step straight through its softmax.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(clustering_cfg=dict(type='KMeansClustering')))
