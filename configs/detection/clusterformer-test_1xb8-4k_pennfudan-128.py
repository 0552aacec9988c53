# Our instance head on real photos: the instance demo's model
# (../_base_/models/clusterformer-test_inst-demo.py: the `test` ClusterFormer,
# the ClusterFormer detection head, 20 instance centers, the head at twice
# the backbone's learning rate) on Penn-Fudan pedestrians
# (../_base_/datasets/pennfudan_128.py: one class, 100 train / 20 val photos,
# longer side 128, scale jitter, crop, flip, photometric distortion) with the
# Penn-Fudan schedule (4000 iterations, steps at 3000 and 3500). Compared
# with mmdet's Mask2Former on the same backbone and on Swin of the same size
# (mask2former_*_1xb8-4k_pennfudan-128.py, the same recipe):
#   python tools/analysis/compare_heads.py --tasks pennfudan --seeds 0 1 2
_base_ = [
    '../_base_/models/clusterformer-test_inst-demo.py',
    '../_base_/datasets/pennfudan_128.py',
    '../_base_/schedules/pennfudan_4k-iters.py',
]

model = dict(bbox_head=dict(num_classes=len(_base_.classes)))
# the instance comparison's recipe: the head at twice the backbone's rate
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(bbox_head=dict(lr_mult=2.0))))
