# Table 6f (decoder query initialization (instance segmentation)), row
# "Scene-Adoptive Embedding [47]" (paper: mask AP 45.1): scene-adaptive
# embedding [47]: learned embeddings mixed with coefficients from the image's
# global feature.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../detection/clusterformer-tiny_8xb2-lsj-50e_coco.py'

model = dict(bbox_head=dict(center_init='scene_adaptive'))
