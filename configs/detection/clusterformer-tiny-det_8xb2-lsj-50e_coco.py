# ClusterFormer-Tiny: COCO object detection (boxes only), §4.1.2, Table 2.
# The instance-segmentation config with the head's mask branch switched off:
# the same decoder and 100 encoder-initialised centers, sigmoid BCE classes
# (focal form), L1 x5 + GIoU x2 boxes, Hungarian matching on class and box
# costs; boxes from the box branch;
# annotations are loaded without masks and scored for bbox AP. Same recipe
# (50 epochs, batch 16, LSJ 0.1-2.0 with 1024 crops, test shorter side 800)
# and the same learning-rate note as clusterformer-tiny_8xb2-lsj-50e_coco.py.
_base_ = [
    './clusterformer-tiny_8xb2-lsj-50e_coco.py',
    '../_base_/models/clusterformer_head-training.py',
]

with_mask = False
image_size = (1024, 1024)

model = dict(
    data_preprocessor=dict(
        pad_mask=False,
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0,
                 pad_mask=False, pad_seg=False)
        ]),
    bbox_head=dict(with_mask=False, loss_mask=None, loss_dice=None),
    test_cfg=dict(box_source='regress'),
    train_cfg=_base_.box_matching)  # on class and box costs
del _base_.mask_matching, _base_.box_matching, _base_.seg_losses  # used above

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='RandomFlip', prob=0.5),
    # large scale jittering
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0),
         resize_type='Resize', keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5)),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='SafeResize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox'])
test_evaluator = val_evaluator
