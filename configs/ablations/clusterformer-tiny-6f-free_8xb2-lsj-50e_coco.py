# Table 6f (decoder query initialization (instance segmentation)), row "Free
# Parameters" (paper: mask AP 44.2): free parameters: a learned table of 100
# queries.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../detection/clusterformer-tiny_8xb2-lsj-50e_coco.py'

model = dict(bbox_head=dict(center_init='free'))
