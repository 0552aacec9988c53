# ClusterFormer-Small: COCO instance segmentation (boxes and masks),
# §4.1.2 / §4.1.4, Tables 2 and 4. Everything as the tiny config (head,
# recipe, and the learning-rate note) except the backbone depth (2, 2, 18, 2).
_base_ = './clusterformer-tiny_8xb2-lsj-50e_coco.py'

# The backbone trains from scratch; for ImageNet-1K ClusterFormer-Small weights
# (configs/classification/clusterformer-small_16xb64_in1k.py) write a child
# config as ../_base_/models/clusterformer-tiny_downstream.py describes.
model = dict(backbone=dict(arch='small'))
