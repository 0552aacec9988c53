# The semantic CPU demos' model: mmseg's EncoderDecoder with the `test`
# ClusterFormer and our ClusterFormerHead of the same design as the ADE20K
# configs (6 RCA decoder layers with T=3, centers from the encoder, CE x5 +
# dice x1, deep supervision), 64 wide, on images scaled by mean 127.5 and std
# 64 and padded to a multiple of 32. The pixel decoder is mmdet's FPN-style
# PixelDecoder (top-down over the four backbone levels to stride 4); the
# decoder layers cluster levels pooled from its output, I^l at H/2^l x W/2^l
# "by standard pooling" as §3.3 words Eq. 4. On CamVid and on the shapes it
# beat the ADE20K configs' MSDeformAttn pixel decoder over three seeds each
# (docs/en/head_comparison.md). The configs set the
# class count: `model = dict(decode_head=dict(num_classes=num_classes))`.
# ./upernet_clusterformer-test_seg-demo.py swaps the head for mmseg's UperNet.
_base_ = [
    './clusterformer-test_cpu-demo.py',
    './clusterformer_head-training.py',
]

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32,
    test_cfg=dict(size_divisor=32))

model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone={{_base_.backbone}},
    decode_head=dict(
        type='ClusterFormerHead',
        in_channels={{_base_.backbone_channels}},
        in_index=[0, 1, 2, 3],
        channels={{_base_.embed_dims}},
        pixel_decoder={{_base_.fpn_pixel_decoder}},
        transformer_decoder={{_base_.transformer_decoder}},
        center_init='encoder',
        num_encoder_centers={{_base_.num_encoder_centers}},
        encoder_channels=256,
        align_corners=False,
        ignore_index=255,
        loss_decode=_base_.seg_losses),  # CE x5 + dice x1, as on ADE20K
    train_cfg=dict(),
    # whole-image inference; slide inference: mode='slide', crop_size=(32, 32),
    # stride=(16, 16)
    test_cfg=dict(mode='whole'))
# the bases' helpers: seg_losses used above, the detection ones not needed
del _base_.mask_matching, _base_.box_matching, _base_.seg_losses, _base_.det_data_preprocessor
