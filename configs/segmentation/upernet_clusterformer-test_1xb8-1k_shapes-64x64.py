# The head users would pick instead of ours, on the semantic demo: mmseg's
# stock UperNet (UPerHead + auxiliary FCNHead, cross-entropy, as in
# mmseg's upernet configs; ../_base_/models/upernet_clusterformer-test_seg-demo.py)
# on the same `test` ClusterFormer backbone, data, schedule, optimizer and
# seed as clusterformer-test_1xb8-1k_shapes-64x64.py, 64 channels wide as our
# head. BN instead of SyncBN: one process.
# tools/analysis/compare_heads.py trains both over seeds and prints the table.
_base_ = [
    '../_base_/models/upernet_clusterformer-test_seg-demo.py',
    '../_base_/datasets/shapes_semantic.py',
    '../_base_/schedules/seg-demo_1k-iters.py',
]

num_classes = 7
model = dict(
    decode_head=dict(num_classes=num_classes), auxiliary_head=dict(num_classes=num_classes))
