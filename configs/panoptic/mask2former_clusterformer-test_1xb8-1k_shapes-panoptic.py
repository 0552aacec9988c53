# The head users would pick instead of ours, on the panoptic demo: mmdet's
# stock Mask2Former panoptic model
# (configs/_base_/models/mask2former_clusterformer-test_cpu-demo.py with
# stuff classes) on the same `test` ClusterFormer backbone, data, schedule,
# optimizer and seed as clusterformer-test_1xb8-1k_shapes-panoptic.py, and
# the same decoder size as our head: 64 wide, 23 queries (our 20 thing + 3
# stuff centers), 6 decoder layers, 1024 loss points. mmdet's fusion head has
# no semantic output, so mIoU_pan is not scored.
# tools/analysis/compare_heads.py trains both over seeds and prints the table.
_base_ = [
    '../_base_/models/mask2former_clusterformer-test_cpu-demo.py',
    '../_base_/datasets/shapes_coco-panoptic.py',
    '../_base_/schedules/shapes_1k-iters.py',
]

num_things_classes = 4
num_stuff_classes = 3
num_classes = num_things_classes + num_stuff_classes

model = dict(
    data_preprocessor=dict(pad_seg=True, seg_pad_value=255),
    panoptic_head=dict(
        num_stuff_classes=num_stuff_classes,
        num_queries=23,  # ours: 20 thing + 3 stuff centers
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_stuff_classes=num_stuff_classes),
    test_cfg=dict(
        panoptic_on=True,
        semantic_on=False,  # not implemented by MaskFormerFusionHead
        max_per_image=100))

data_root = '{{fileDirname}}/../../data/shapes/coco/'
val_evaluator = [
    dict(type='PanopticQualityMetric',
         ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'panoptic_val/'),
    dict(type='CocoMetric',  # mAP_pan^Th
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['segm']),
]
test_evaluator = val_evaluator
