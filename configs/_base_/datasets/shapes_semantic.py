# The embedded "shapes" semantic split (7 classes: 4 shapes and 3 stuff
# textures, 64x64 images; `python tools/dataset/make_shapes.py --out
# data/shapes`) for mmseg, scored with mIoU. data_root is found from this
# file, so the demos run from any working directory.
data_root = '{{fileDirname}}/../../../data/shapes/semantic'
classes = ('circle', 'cross', 'square', 'triangle', 'sky', 'grass', 'bricks')
palette = [[220, 20, 60], [255, 200, 0], [148, 0, 211], [0, 200, 200],
           [135, 206, 235], [34, 139, 34], [160, 82, 45]]
dataset_type = 'BaseSegDataset'
metainfo = dict(classes=classes, palette=palette)
# CheckImageFile refuses empty files and images with a side above this
# (a batch is padded to its largest image)
max_image_side = 4096
train_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations', num_classes=len(classes)),
    dict(type='CheckSegSize'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations', num_classes=len(classes)),
    dict(type='CheckSegSize'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    train_dataloader,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
