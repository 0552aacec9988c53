# mmseg's stock Swin Transformer of the widths and depths of the `test`
# ClusterFormer (32, 64, 128, 256 channels; 1, 1, 2, 1 blocks; 2, 4, 8, 16
# heads of width 16; Swin's own patch 4, window 7, MLP ratio 4) with the same
# UperNet as upernet_clusterformer-test_1xb8-2k_camvid-96x128.py, on CamVid
# at 96x128 with the same data, schedule, optimizer and seed; stage 4 is 3x4
# tokens, which Swin pads to its 7x7 window. Compared with our head
# (clusterformer-test_1xb8-2k_camvid-96x128.py) and the stock heads on our
# backbone:
#   python tools/analysis/compare_heads.py --tasks camvid \
#       --heads ours stock mask2former swin-upernet --seeds 0 1 2
_base_ = './upernet_clusterformer-test_1xb8-2k_camvid-96x128.py'

model = dict(backbone=dict(_base_.swin_backbone, _delete_=True))
del _base_.backbone, _base_.swin_backbone  # the demos' ClusterFormer, not used here
