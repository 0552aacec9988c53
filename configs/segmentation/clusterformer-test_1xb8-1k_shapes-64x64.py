# CPU demo: the 'test' ClusterFormer with the ClusterFormer decode head on the
# embedded "shapes" semantic split (7 classes, 64x64 images; make it with
# `python tools/dataset/make_shapes.py --out data/shapes`). Same head design as
# the ADE20K configs (pixel decoder, 6 RCA decoder layers with T=3, centers
# from the encoder, CE x5 + dice x1, deep supervision), narrower (64 wide):
# ../_base_/models/clusterformer-test_seg-demo.py.
# Trains through the stock runner in a few minutes on a CPU (1000 iterations of
# 8 images, about 0.3 s each on one core); tiny models run fastest with
# OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = [
    '../_base_/models/clusterformer-test_seg-demo.py',
    '../_base_/datasets/shapes_semantic.py',
    '../_base_/schedules/seg-demo_1k-iters.py',
]

num_classes = 7
model = dict(decode_head=dict(num_classes=num_classes))
