# CPU demo, detection only: the instance demo
# (clusterformer-test_1xb8-1k_shapes-inst.py) with the head's mask branch
# switched off, matching on class and box costs, annotations loaded without
# masks and bbox AP only (§4.1.2's detection head).
_base_ = [
    './clusterformer-test_1xb8-1k_shapes-inst.py',
    '../_base_/models/clusterformer_head-training.py',
]

model = dict(
    data_preprocessor=dict(pad_mask=False),
    bbox_head=dict(with_mask=False, loss_mask=None, loss_dice=None),
    train_cfg=_base_.box_matching)  # on class and box costs
del _base_.mask_matching, _base_.box_matching, _base_.seg_losses  # used above

with_mask = False
# CheckImageFile refuses empty files and images with a side above this
# (a batch is padded to its largest image)
max_image_side = 4096
train_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5)),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', max_side=max_image_side),
    dict(type='LoadImageFromFile'),
    dict(type='SafeResize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox'])
test_evaluator = val_evaluator
