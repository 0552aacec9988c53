# Table 6c (cluster center updating), row "Criss Cross-Attention [35]"
# (paper: 34.16M, top-1 79.91): criss-cross attention [35] (CCNet): each grid
# center attends to the pixel rows and columns of its pooling cell.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(clustering_cfg=dict(type='CrissCrossClustering')))
