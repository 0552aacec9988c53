# The embedded "shapes" classification split (4 shape classes, 400 train /
# 50 val 64x64 images per class; `python tools/dataset/make_shapes.py --out
# data/shapes`) for mmpretrain's CustomDataset, scored with top-1.
# data_root is found from this file, so the demos run from any working
# directory.
data_root = '{{fileDirname}}/../../../data/shapes/classification'
classes = ('circle', 'cross', 'square', 'triangle')
data_preprocessor = dict(
    num_classes=len(classes),
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    to_rgb=True)

# CheckImageFile refuses empty files and images with a side above this
# (a batch is padded to its largest image)
max_image_side = 4096
train_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        ann_file='meta/train.txt',
        classes=classes,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    train_dataloader,
    dataset=dict(train_dataloader['dataset'], data_prefix='val', ann_file='meta/val.txt',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
