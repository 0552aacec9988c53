# The embedded "shapes" COCO split (4 thing classes, 64x64 scenes with 1-4
# objects; `python tools/dataset/make_shapes.py --out data/shapes`) for mmdet:
# boxes and instance masks, scored with CocoMetric. data_root is found from
# this file, so the demos run from any working directory.
data_root = '{{fileDirname}}/../../../data/shapes/coco/'
classes = ('circle', 'cross', 'square', 'triangle')
dataset_type = 'CocoDataset'
metainfo = dict(classes=classes)
backend_args = None
with_mask = True
# CheckImageFile refuses empty files and images with a side above this
# (a batch is padded to its largest image)
max_image_side = 4096
train_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=with_mask),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='SafeResize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    {k: v for k, v in train_dataloader.items() if k != 'batch_sampler'},
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict({k: v for k, v in train_dataloader['dataset'].items() if k != 'filter_cfg'},
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
