# mmdet's stock Mask2Former (Mask2FormerHead, masked-attention decoder,
# softmax classes with a no-object class, MaskFormerFusionHead) on the CPU
# demos' `test` ClusterFormer backbone, as wide and deep as our demo heads:
# 64 wide, 20 queries, 6 decoder layers, 1024 loss points
# (./mask2former_cpu-demo-head.py); instance segmentation. The stock-head
# comparison configs of the instance and panoptic demos start from it
# (docs/en/head_comparison.md).
_base_ = ['./clusterformer-test_cpu-demo.py', './mask2former_cpu-demo-head.py']

num_things_classes = 4
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes

model = dict(
    type='Mask2Former',
    data_preprocessor=dict(_base_.det_data_preprocessor, pad_seg=False),
    # the demo's `test` backbone; Mask2FormerHead takes the four maps only
    backbone=dict(_base_.backbone, out_centers=False),
    panoptic_head=dict(
        _base_.mask2former_head,
        in_channels={{_base_.backbone_channels}},
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        pixel_decoder={{_base_.pixel_decoder}},
        loss_cls=dict(_base_.mask2former_head.loss_cls, class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        type='MaskFormerFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=_base_.mask2former_train_cfg,
    test_cfg=dict(
        panoptic_on=False,
        semantic_on=False,
        instance_on=True,
        max_per_image=80,  # all 20 x 4 (query, class) pairs (mmdet's topk needs <=)
        iou_thr=0.8,
        filter_low_score=True),
    init_cfg=None)
# used above
del _base_.det_data_preprocessor, _base_.mask2former_head, _base_.mask2former_train_cfg
