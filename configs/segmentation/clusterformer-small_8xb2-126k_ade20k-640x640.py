# ClusterFormer-Small + ClusterFormer decode head on ADE20K, §4.1.3 / Table 3.
# Same head, data and schedule as the tiny config (see its comments on the
# 100-epoch / lr 1e-5 choices); only the backbone depth (2-2-18-2) changes
# (its stochastic depth stays 0.3, Swin-S's rate too). Widths are those of tiny
# (96..768), so the head's in_channels and encoder-center width (768 x 100
# centers) are unchanged.
_base_ = './clusterformer-tiny_8xb2-126k_ade20k-640x640.py'

# The backbone trains from scratch; for ImageNet-1K ClusterFormer-Small weights
# (configs/classification/clusterformer-small_16xb64_in1k.py) write a child
# config as ../_base_/models/clusterformer-tiny_downstream.py describes.
model = dict(backbone=dict(arch='small'))
