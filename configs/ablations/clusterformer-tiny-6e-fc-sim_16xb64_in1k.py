# Table 6e (feature dispatching), row "FC w/ Similarity [58]" (paper: 27.46M,
# top-1 80.96): FC with similarity [58] (Context Cluster's dispatching): the
# most similar center through an FC layer, gated by sigmoid(alpha * cos +
# beta).
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../classification/clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(dispatch_cfg=dict(mode='fc_sim')))
