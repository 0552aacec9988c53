# How our heads are trained, where several configs train them alike.
#
# Instance and panoptic heads on COCO (§4.1.2, §4.1.5; the model's train_cfg):
# Hungarian matching of the centers to the objects on the class cost (binary
# cross-entropy in its focal form) and the mask costs (BCE + dice), and the
# mask losses on 12544 points per mask, 3x oversampled, 75% of them where the
# prediction is least certain (Mask2Former's).
mask_matching = dict(
    assigner=dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type='FocalLossCost', weight=2.0),
            dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
        ]),
    num_points=12544,
    oversample_ratio=3.0,
    importance_sample_ratio=0.75)
# Detection only (the mask branch off): matching on the class and box costs
# (L1 x5 + GIoU x2, as the box losses).
box_matching = dict(
    assigner=dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type='FocalLossCost', weight=2.0),
            dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0),
        ]))
# The semantic head (§4.1.3; decode_head.loss_decode): cross-entropy x5 (over
# the pixels that are not ignored) + dice x1.
seg_losses = [
    dict(type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
         loss_weight=5.0, loss_name='loss_ce'),
    dict(type='DiceLoss', use_sigmoid=False, loss_weight=1.0, loss_name='loss_dice'),
]
# Configs take these as `_base_.mask_matching` etc. and drop them after use
# (`del _base_.mask_matching, _base_.box_matching, _base_.seg_losses`).
