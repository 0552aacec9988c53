# ClusterFormer-Tiny + ClusterFormer panoptic head: COCO Panoptic, §4.1.5,
# Table 5 (PQ, PQ^Th, PQ^St, mAP_pan^Th, mIoU_pan).
#
# Head: the detection head's decoder (MSDeformAttn pixel decoder, 6 decoder
# layers of recurrent cross-attention clustering (Eq. 4, T=3) + self-attention
# + FFN) over 100 thing centers and one center per stuff class (53), started
# from the encoder's cluster centers (Table 6f); classes from a small FFN with
# binary cross-entropy; masks from the center-pixel dot product. Loss Eq. 7:
# lambda_th = 5, lambda_st = 3, lambda_aux = 1, L_aux = PQ-style (3.0) +
# mask-ID cross-entropy (0.3) + instance discrimination (1.0) + semantic
# segmentation (1.0), MaX-DeepLab's weights.
#
# Recipe (§4.1.5): 50 epochs, batch 16 (8 GPUs x 2), scale jitter 0.1-2.0
# with 1024x1024 crops, test with the shorter side 800: mmdet's Mask2Former
# panoptic LSJ recipe, inherited below (368750 iterations).
# Learning rate: the paper's 1e-5 is read as Mask2Former's 1e-4 with the
# backbone at x0.1 (see configs/detection/clusterformer-tiny_8xb2-lsj-50e_coco.py);
# --cfg-options optim_wrapper.optimizer.lr=1e-5 runs the literal value.
#
# Evaluation without panopticapi (not on PyPI): PQ from mmcf's
# PanopticQualityMetric (as panopticapi's pq_compute), mAP_pan^Th from CocoMetric on the
# thing masks, mIoU_pan from SemSegMetric; panoptic PNGs are read by
# LoadCocoPanopticAnnotations instead of mmdet's LoadPanopticAnnotations.
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
    # the backbone (from scratch: pretrained = None) and our heads' pieces
    '../_base_/models/clusterformer-tiny_our-heads.py',
]

num_things_classes = 80
num_stuff_classes = 53
embed_dims = 256
image_size = (1024, 1024)
data_root = 'data/coco/'
backend_args = None

model = dict(
    _delete_=True,
    type='ClusterFormerPanopticDetector',
    # Mask2Former's (inherited): ImageNet mean and std, batches padded to
    # 1024 x 1024 with their masks and panoptic maps
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.backbone_with_centers,  # the head starts from its centers
    # inference: fuse thing and stuff centers into mmdet's panoptic outputs
    panoptic_fusion_head=dict(type='ClusterFormerPanopticFusionHead'),
    bbox_head=dict(
        _base_.head_inputs,  # maps and encoder centers, decoder pieces
        type='ClusterFormerPanopticHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=100,  # thing centers; + one per stuff class
        feat_channels=embed_dims,
        lambda_th=5.0,  # Eq. 7
        lambda_st=3.0,
        lambda_aux=1.0,
        aux_losses=dict(  # None (or weight=0) switches a term off
            pq=dict(weight=3.0, alpha=0.75),
            mask_id=dict(weight=0.3),
            inst_disc=dict(weight=1.0, temperature=0.3, num_points=4096),
            semantic=dict(weight=1.0)),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=1.0),
        loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                       naive_dice=True, eps=1.0, loss_weight=1.0)),
    train_cfg=_base_.mask_matching,  # on class and mask costs
    test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True, max_per_img=100,
                  object_mask_thr=0.5, iou_thr=0.8, mask_thr=0.5))

# the inherited pipelines with LoadCocoPanopticAnnotations (no panopticapi)
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='LoadCocoPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True, backend_args=backend_args),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='SafeResize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadCocoPanopticAnnotations', backend_args=backend_args),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='PanopticQualityMetric',  # PQ, PQ^Th, PQ^St
         ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/',
         backend_args=backend_args),
    dict(type='CocoMetric',  # mAP_pan^Th
         ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['segm'],
         backend_args=backend_args),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),  # mIoU_pan
]
test_evaluator = val_evaluator

# AdamW 1e-4, backbone x0.1, no decay on norms and embeddings, Mask2Former's
# clipping: mmdet's Mask2Former optimizer, inherited, with our center
# embeddings and E-step temperatures added to its no-decay keys; the inherited
# schedule: 368750 iterations, x0.1 at 327778, 355092.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.no_decay_keys))
# the helpers of the bases, used above
del _base_.backbone, _base_.backbone_with_centers, _base_.head_inputs
del _base_.no_decay, _base_.no_decay_keys
del _base_.mask_matching, _base_.box_matching, _base_.seg_losses
