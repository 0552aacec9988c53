# CPU demo: the 'test' ClusterFormer with the ClusterFormer detection head on
# the embedded "shapes" COCO split, boxes and instance masks, scored with
# mmdet's CocoMetric (bbox and segm AP). Same head design as the COCO configs
# (RCA decoder layers with T=3, instance centers from the encoder's centers,
# sigmoid BCE classes in focal form, L1 x5 + GIoU x2 boxes, BCE + dice masks,
# Hungarian matching on class and mask costs, auxiliary losses on every
# layer, output boxes from the masks), narrower (64 wide) and with 20
# instance centers for scenes of at most 4 objects. The pixel decoder is
# mmdet's FPN-style PixelDecoder, as in the semantic demos (the decoder
# layers cluster levels pooled from its stride-4 output, §3.3); over three
# seeds it was a little ahead of the COCO configs' MSDeformAttn decoder here
# and cheaper (docs/en/head_comparison.md). 1000 iterations: the 160
# training scenes are learned by then.
# Run with OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = [
    '../_base_/models/clusterformer-test_cpu-demo.py',
    '../_base_/datasets/shapes_coco-instance.py',
    '../_base_/schedules/shapes_1k-iters.py',
]

model = dict(
    type='ClusterFormerDetector',
    data_preprocessor=_base_.det_data_preprocessor,
    backbone={{_base_.backbone}},
    bbox_head=dict(
        type='ClusterFormerDetHead',
        in_channels={{_base_.backbone_channels}},
        num_classes=4,
        feat_channels={{_base_.embed_dims}},
        num_queries=20,
        pixel_decoder={{_base_.fpn_pixel_decoder}},
        transformer_decoder={{_base_.transformer_decoder}},
        center_init='encoder',
        num_encoder_centers={{_base_.num_encoder_centers}},
        encoder_channels=256,
        with_mask=True),
    # the head's defaults are the COCO recipe's losses and match costs; the
    # masks here are at most 64x64 = 4096 pixels, so fewer points
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_img=100, mask_thr=0.5))
del _base_.det_data_preprocessor  # used above
# The head learns at twice the backbone's rate (the recipe of the instance
# comparison, the stock Mask2Former's config has the same line for its head;
# docs/en/head_comparison.md). mmengine matches the longest custom key
# first and breaks ties alphabetically, so `bbox_head` also takes the head's
# norms and `query_pos` (lr x2, weight decay 0.05, as the stock head's);
# `center_mix`, `level_embed` and `logit_scale` keep their own keys (lr x1,
# no decay).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(bbox_head=dict(lr_mult=2.0))))
