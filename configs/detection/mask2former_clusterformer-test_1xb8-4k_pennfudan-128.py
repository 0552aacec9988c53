# mmdet's stock Mask2Former on the `test` ClusterFormer (as in
# mask2former_clusterformer-test_1xb8-1k_shapes-inst.py: 64 wide, 20 queries,
# 6 decoder layers, the head at twice the backbone's learning rate) on
# Penn-Fudan pedestrians with the data and schedule of our head's
# clusterformer-test_1xb8-4k_pennfudan-128.py, which it is compared with.
_base_ = [
    '../_base_/models/mask2former_clusterformer-test_cpu-demo.py',
    '../_base_/datasets/pennfudan_128.py',
    '../_base_/schedules/pennfudan_4k-iters.py',
]

num_things_classes = num_classes = len(_base_.classes)
model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    test_cfg=dict(max_per_image=20))  # the 20 queries x 1 class
# the instance comparison's recipe: the head at twice the backbone's rate
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(panoptic_head=dict(lr_mult=2.0))))
