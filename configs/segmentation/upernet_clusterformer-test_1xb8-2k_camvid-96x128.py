# mmseg's stock UperNet (UPerHead + auxiliary FCNHead, 64 wide, as in
# upernet_clusterformer-test_1xb8-1k_shapes-64x64.py) on the `test`
# ClusterFormer backbone, on CamVid at 96x128 with the data, schedule,
# optimizer and seed of clusterformer-test_1xb8-2k_camvid-96x128.py (our
# head), which it is compared with, beside mmseg's Mask2Former head and Swin:
#   python tools/analysis/compare_heads.py --tasks camvid \
#       --heads ours stock mask2former swin-upernet --seeds 0 1 2
_base_ = [
    '../_base_/models/upernet_clusterformer-test_seg-demo.py',
    '../_base_/datasets/camvid_96x128.py',
    '../_base_/schedules/seg-demo_2k-iters.py',
]

num_classes = len(_base_.classes)  # 11
model = dict(
    decode_head=dict(num_classes=num_classes), auxiliary_head=dict(num_classes=num_classes))
