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
    '../_base_/models/clusterformer_coco-decoder.py',
]

custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# ImageNet-1K ClusterFormer-Tiny weights (a runner checkpoint of
# configs/classification/clusterformer-tiny_16xb64_in1k.py); None trains
# the backbone from scratch.
pretrained = None

num_things_classes = 80
num_stuff_classes = 53
embed_dims = 256
image_size = (1024, 1024)
data_root = 'data/coco/'
backend_args = None

model = dict(
    _delete_=True,
    type='ClusterFormerPanopticDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255,
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0,
                 pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
        ]),
    backbone=dict(
        type='ClusterFormer',
        arch='tiny',
        num_centers=100,
        num_iters=3,
        head_dim=32,
        out_indices=(0, 1, 2, 3),
        out_centers=True,  # the head starts from the encoder's centers
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None),
    # inference: fuse thing and stuff centers into mmdet's panoptic outputs
    panoptic_fusion_head=dict(type='ClusterFormerPanopticFusionHead'),
    bbox_head=dict(
        type='ClusterFormerPanopticHead',
        in_channels=[96, 192, 384, 768],
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=100,  # thing centers; + one per stuff class
        feat_channels=embed_dims,
        pixel_decoder={{_base_.pixel_decoder}},  # Mask2Former's
        transformer_decoder={{_base_.transformer_decoder}},  # §3.3
        center_init='encoder',  # Table 6f; 'free' | 'feature'
        num_encoder_centers=100,
        encoder_channels=768,
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
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
            ]),
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75),
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
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
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
# clipping; the inherited schedule: 368750 iterations, x0.1 at 327778, 355092.
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'query_pos': embed_multi,
            'center_feat': embed_multi,
            'center_mix': embed_multi,
            # the E-step temperatures (also the backbone's, at full lr then)
            'logit_scale': embed_multi,
            'level_embed': embed_multi,
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.01, norm_type=2))
