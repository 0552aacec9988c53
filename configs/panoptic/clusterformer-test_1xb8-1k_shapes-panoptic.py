# CPU demo: the 'test' ClusterFormer with the ClusterFormer panoptic head on
# the embedded "shapes" COCO Panoptic split, scored with PQ, mAP_pan^Th and
# mIoU_pan as Table 5. Same head design as the COCO Panoptic configs
# (MSDeformAttn pixel decoder, RCA decoder layers with T=3, thing + stuff
# centers from the encoder's centers, loss of Eq. 7 with lambda_th=5,
# lambda_st=3, lambda_aux=1 and the four MaX-DeepLab auxiliary terms),
# narrower (64 wide), 20 thing centers for scenes of at most 4 objects.
# Run with OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = [
    '../_base_/models/clusterformer-test_cpu-demo.py',
    '../_base_/datasets/shapes_coco-panoptic.py',
    '../_base_/schedules/shapes_1k-iters.py',
]

model = dict(
    type='ClusterFormerPanopticDetector',
    # with the panoptic maps padded too (255: ignored)
    data_preprocessor=dict(_base_.det_data_preprocessor, pad_seg=True, seg_pad_value=255),
    backbone={{_base_.backbone}},
    # inference: fuse thing and stuff centers into mmdet's panoptic outputs
    panoptic_fusion_head=dict(type='ClusterFormerPanopticFusionHead'),
    bbox_head=dict(
        type='ClusterFormerPanopticHead',
        in_channels={{_base_.backbone_channels}},
        num_things_classes=4,
        num_stuff_classes=3,
        num_queries=20,  # thing centers; one more center per stuff class
        feat_channels={{_base_.embed_dims}},
        pixel_decoder={{_base_.pixel_decoder}},
        transformer_decoder={{_base_.transformer_decoder}},
        center_init='encoder',
        num_encoder_centers={{_base_.num_encoder_centers}},
        encoder_channels=256),
    # the head's defaults are the COCO recipe's: Eq. 7 with lambda 5 / 3 / 1,
    # the four MaX-DeepLab auxiliary terms, BCE + dice, the match costs; the
    # masks here are at most 64x64 = 4096 pixels, so fewer points
    train_cfg=dict(num_points=1024),
    test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True, max_per_img=100,
                  object_mask_thr=0.5, iou_thr=0.8, mask_thr=0.5))
del _base_.det_data_preprocessor  # used above
