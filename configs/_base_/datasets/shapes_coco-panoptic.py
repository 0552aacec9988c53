# The embedded "shapes" COCO Panoptic split (64x64 scenes; things circle,
# cross, square, triangle; stuff sky, grass, bricks) for mmdet, scored with PQ
# (mmcf's PanopticQualityMetric), mAP_pan^Th (CocoMetric, segm) and mIoU_pan
# (SemSegMetric), as Table 5: the instance split's images and loaders
# (./shapes_coco-instance.py) with the panoptic annotations.
_base_ = './shapes_coco-instance.py'

thing_classes = ('circle', 'cross', 'square', 'triangle')
stuff_classes = ('sky', 'grass', 'bricks')
dataset_type = 'CocoPanopticDataset'
metainfo = dict(classes=thing_classes + stuff_classes, thing_classes=thing_classes,
                stuff_classes=stuff_classes)
panoptic_annotations = dict(type='LoadCocoPanopticAnnotations',
                            backend_args=_base_.backend_args)
# the instance pipelines with the panoptic annotations (no box filter)
train_pipeline = [panoptic_annotations if t['type'] == 'LoadAnnotations' else t
                  for t in _base_.train_pipeline if t['type'] != 'FilterAnnotations']
test_pipeline = [panoptic_annotations if t['type'] == 'LoadAnnotations' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(
    type=dataset_type, metainfo=metainfo, ann_file='annotations/panoptic_train.json',
    data_prefix=dict(img='train/', seg='panoptic_train/'), pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, metainfo=metainfo, ann_file='annotations/panoptic_val.json',
    data_prefix=dict(img='val/', seg='panoptic_val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='PanopticQualityMetric',
         ann_file=_base_.data_root + 'annotations/panoptic_val.json',
         seg_prefix=_base_.data_root + 'panoptic_val/',
         backend_args=_base_.backend_args),
    dict(type='CocoMetric',  # mAP_pan^Th: thing masks of the panoptic model
         ann_file=_base_.data_root + 'annotations/instances_val.json',
         metric=['segm'],
         backend_args=_base_.backend_args),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),  # mIoU_pan
]
test_evaluator = val_evaluator
del panoptic_annotations, _base_.classes, _base_.with_mask  # the instance split's
