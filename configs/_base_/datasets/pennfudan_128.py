# Penn-Fudan pedestrians (real street photos, one class 'person', a mask per
# person) with the longer side at 128 px, in COCO format: train 100 / val 20
# photos of the shared copy ../shared/data/pennfudan_128 beside the
# repository (made by `python tools/dataset/convert_pennfudan.py SRC OUT`,
# docs/en/dataset.md). The shapes instance split's loaders
# (./shapes_coco-instance.py) with the augmentation a user would use on 100
# real photos: mmdet's scale jitter (0.5-2x of 128 px) with a 128x128 crop
# (boxes recomputed from the cropped masks), flip and photometric
# distortion; the validation photos at their size (longer side 128).
_base_ = './shapes_coco-instance.py'

data_root = '{{fileDirname}}/../../../../shared/data/pennfudan_128/'
classes = ('person', )
metainfo = dict(classes=classes)
image_size = (128, 128)
train_pipeline = [
    dict(type='CheckImageFile', max_side=_base_.max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='PhotoMetricDistortion'),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [dict(t, scale=image_size) if t['type'] == 'SafeResize' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo,
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
