# mmseg's stock Mask2Former head (mmseg's Mask2FormerHead, its wrapper of
# mmdet's) on the `test` ClusterFormer backbone, as wide and deep as our head
# and as the demos' mmdet Mask2Former (../_base_/models/mask2former_cpu-demo-head.py:
# 64 wide, 20 queries, 6 decoder layers, 1024 loss points, the demos' 2-layer
# pixel decoder), on CamVid at 96x128 with the data, schedule, optimizer and
# seed of clusterformer-test_1xb8-2k_camvid-96x128.py (our head), which it is
# compared with, beside mmseg's UperNet and Swin:
#   python tools/analysis/compare_heads.py --tasks camvid \
#       --heads ours stock mask2former swin-upernet --seeds 0 1 2
_base_ = [
    './clusterformer-test_1xb8-2k_camvid-96x128.py',
    '../_base_/models/mask2former_cpu-demo-head.py',
]

model = dict(
    backbone=dict(out_centers=False),  # Mask2FormerHead takes the four maps only
    decode_head=dict(
        _base_.mask2former_head,
        _delete_=True,
        # mmseg's wrapper, built in mmdet's scope: the mmdet head it extends
        # builds its pixel decoder, losses, assigner and sampler from their
        # mmdet names (mmseg's own configs write them 'mmdet.<name>')
        type='mmseg.Mask2FormerHead',
        _scope_='mmdet',
        in_channels=_base_.backbone_channels,
        pixel_decoder=_base_.pixel_decoder,
        num_classes=_base_.num_classes,
        align_corners=False,
        ignore_index=255,
        loss_cls=dict(_base_.mask2former_head.loss_cls,
                      class_weight=[1.0] * _base_.num_classes + [0.1]),
        train_cfg=_base_.mask2former_train_cfg))
del _base_.mask2former_head, _base_.mask2former_train_cfg  # used above
