# ClusterFormer-Small: COCO object detection (boxes only), §4.1.2, Table 2.
# The tiny detection config with the small backbone (depths 2, 2, 18, 2).
_base_ = './clusterformer-tiny-det_8xb2-lsj-50e_coco.py'

# The backbone trains from scratch; for ImageNet-1K ClusterFormer-Small weights
# (configs/classification/clusterformer-small_16xb64_in1k.py) write a child
# config as ../_base_/models/clusterformer-tiny_downstream.py describes.
model = dict(backbone=dict(arch='small'))
