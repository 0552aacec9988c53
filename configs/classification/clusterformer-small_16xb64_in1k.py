# ClusterFormer-Small on ImageNet-1K, §4.1.1: the tiny recipe (mmpretrain's
# Swin-S recipe differs from Swin-T's only in the arch and drop-path rate).
_base_ = './clusterformer-tiny_16xb64_in1k.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
