# The optimizer of the semantic, detection, instance and panoptic CPU demos:
# AdamW (lr 1e-3, weight decay 0.05), gradient clipping at 1.0, no weight decay
# on norms, on the heads' center positional embeddings and mixing weights and
# on the E-step temperatures (a decay would pull every tau towards 1, i.e.
# towards the uniform E-step). The demo schedules set their learning rate
# where it differs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        'query_pos': dict(decay_mult=0.0),
        'center_mix': dict(decay_mult=0.0),
        'logit_scale': dict(decay_mult=0.0)}))
