# What the configs of ClusterFormer-Tiny under our heads (§3.3: COCO instance
# segmentation, detection and panoptic, ADE20K semantic) take together: the
# backbone (./clusterformer-tiny_downstream.py: `backbone_with_centers`, the
# heads start from its centers), the heads' decoder pieces
# (./clusterformer_coco-decoder.py), how the heads are trained
# (./clusterformer_head-training.py) and the parameters of ours their
# optimizers exempt from weight decay
# (../schedules/clusterformer_no-decay-keys.py); and `head_inputs` below.
# Configs drop these helpers after use (`del _base_.backbone,
# _base_.backbone_with_centers, _base_.head_inputs, _base_.no_decay_keys,
# _base_.mask_matching, ...`).
_base_ = [
    './clusterformer-tiny_downstream.py',
    './clusterformer_coco-decoder.py',
    './clusterformer_head-training.py',
    '../schedules/clusterformer_no-decay-keys.py',
]

# The backbone trains from scratch; ./clusterformer-tiny_downstream.py says
# how to start it from ImageNet-1K weights (a child config that sets
# `pretrained` and model.backbone.init_cfg).
pretrained = None

# What each head of ours takes from ClusterFormer-Tiny, through the decoder
# pieces: the widths of its four maps, and its last stage's 100 cluster
# centers (768 wide) to start the head's centers from (Table 6f, "centers from
# encoder"; 'free' | 'feature' are the table's other rows). Configs take it as
# `bbox_head=dict(_base_.head_inputs, type=..., ...)`.
head_inputs = dict(
    in_channels=[96, 192, 384, 768],
    pixel_decoder=_base_.pixel_decoder,  # Mask2Former's
    transformer_decoder=_base_.transformer_decoder,  # §3.3
    center_init='encoder',
    num_encoder_centers=100,
    encoder_channels=768)
