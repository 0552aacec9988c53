# The semantic CPU demo (clusterformer-test_1xb8-1k_shapes-64x64.py: the
# `test` ClusterFormer with our ClusterFormerHead, 64 wide, the demo's AdamW,
# batch 8, one process) on real street scenes: CamVid at 96x128 (11 classes,
# 367 train / 101 val images, the shared copy; ../_base_/datasets/camvid_96x128.py)
# for 2000 iterations, validated at 1000 and 2000. Compared with mmseg's
# UperNet and Mask2Former heads on the same backbone and with mmseg's Swin of
# the same size with UperNet (the other *_1xb8-2k_camvid-96x128.py configs):
#   python tools/analysis/compare_heads.py --tasks camvid \
#       --heads ours stock mask2former swin-upernet --seeds 0 1 2
_base_ = [
    '../_base_/models/clusterformer-test_seg-demo.py',
    '../_base_/datasets/camvid_96x128.py',
    '../_base_/schedules/seg-demo_2k-iters.py',
]

num_classes = len(_base_.classes)  # 11
model = dict(decode_head=dict(num_classes=num_classes))
