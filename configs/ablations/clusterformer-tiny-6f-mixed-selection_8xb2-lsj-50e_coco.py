# Table 6f (decoder query initialization (instance segmentation)), row "Mixed
# Query Selection [44]" (paper: mask AP 44.9): mixed query selection [44]
# (DINO): learned content queries plus the positional part of the top-100
# scored pixels.
# Only this option differs from the default config; docs/en/ablations.md has
# the parameter count and the CPU ablation run.
_base_ = '../detection/clusterformer-tiny_8xb2-lsj-50e_coco.py'

model = dict(bbox_head=dict(center_init='mixed_selection'))
