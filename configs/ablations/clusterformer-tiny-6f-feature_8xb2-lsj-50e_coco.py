# Table 6f (decoder query initialization (instance segmentation)), row
# "Direct Feature Embedding [17]" (paper: mask AP 44.5): direct feature
# embedding [17]: Eq. 5 on the coarsest pixel-decoder level.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../detection/clusterformer-tiny_8xb2-lsj-50e_coco.py'

model = dict(bbox_head=dict(center_init='feature'))
