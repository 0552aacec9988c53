# The head users would pick instead of ours, on the instance demo: mmdet's
# stock Mask2Former (configs/_base_/models/mask2former_clusterformer-test_cpu-demo.py)
# on the same `test` ClusterFormer backbone, data, schedule, optimizer and
# seed as clusterformer-test_1xb8-1k_shapes-inst.py (its head, too, learns at
# twice the backbone's rate), and the same decoder size as our head: 64 wide,
# 20 queries, 6 decoder layers, 1024 loss points.
# tools/analysis/compare_heads.py trains both over seeds and prints the table.
_base_ = [
    '../_base_/models/mask2former_clusterformer-test_cpu-demo.py',
    '../_base_/datasets/shapes_coco-instance.py',
    '../_base_/schedules/shapes_1k-iters.py',
]
# the instance comparison's recipe: the head at twice the backbone's rate
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(panoptic_head=dict(lr_mult=2.0))))
