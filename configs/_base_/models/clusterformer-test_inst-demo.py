# The instance CPU demos' model: the 'test' ClusterFormer with the
# ClusterFormer detection head. Same head design as the COCO configs (RCA
# decoder layers with T=3, instance centers from the encoder's centers,
# sigmoid BCE classes in focal form, L1 x5 + GIoU x2 boxes, BCE + dice masks,
# Hungarian matching on class and mask costs, auxiliary losses on every
# layer, output boxes from the masks), narrower (64 wide) and with 20
# instance centers. The pixel decoder is mmdet's FPN-style PixelDecoder, as
# in the semantic demos (the decoder layers cluster levels pooled from its
# stride-4 output, §3.3); over three seeds it was a little ahead of the COCO
# configs' MSDeformAttn decoder on the shapes and cheaper
# (docs/en/head_comparison.md). The configs set `num_classes` of the head.
_base_ = './clusterformer-test_cpu-demo.py'

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
    # demo masks are small (64x64 on the shapes), so fewer points
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_img=100, mask_thr=0.5))
del _base_.det_data_preprocessor  # used above
