# The parameters of ours that the COCO and ADE20K optimizers exempt from
# weight decay (lr x1.0, decay x0.0), as Mask2Former exempts its query
# embeddings: the heads' center embeddings (positional, content, and the mix
# of the encoder's centers) and the E-step temperatures of every clustering
# layer (a decay would pull every tau towards 1, i.e. towards the uniform
# E-step). Configs add `_base_.no_decay_keys` to their optimizer's
# paramwise_cfg.custom_keys: the COCO ones to those of mmdet's Mask2Former
# optimizer, which they inherit, the ADE20K ones to theirs.
no_decay = dict(lr_mult=1.0, decay_mult=0.0)
no_decay_keys = {
    'query_pos': no_decay,
    'center_feat': no_decay,
    'center_mix': no_decay,
    # the E-step temperatures, the backbone's too (at the full lr where the
    # backbone's lr is scaled down: the longer key wins)
    'logit_scale': no_decay,
}
