# The backbone users would pick instead of ours: mmdet's Swin Transformer of
# the widths and depths of the `test` ClusterFormer (32, 64, 128, 256
# channels; 1, 1, 2, 1 blocks; 2, 4, 8, 16 heads; Swin's own patch 4, window
# 7, MLP ratio 4) under the same stock Mask2Former, data and schedule as
# mask2former_clusterformer-test_1xb8-4k_pennfudan-128.py.
_base_ = './mask2former_clusterformer-test_1xb8-4k_pennfudan-128.py'

model = dict(backbone=dict(_base_.swin_backbone, _delete_=True))
del _base_.backbone, _base_.swin_backbone  # the demos' ClusterFormer, not used here
