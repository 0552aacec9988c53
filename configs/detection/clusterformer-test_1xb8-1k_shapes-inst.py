# CPU demo: the 'test' ClusterFormer with the ClusterFormer detection head on
# the embedded "shapes" COCO split, boxes and instance masks, scored with
# mmdet's CocoMetric (bbox and segm AP). The model
# (../_base_/models/clusterformer-test_inst-demo.py) is the COCO configs'
# head design, 64 wide, with 20 instance centers for scenes of at most 4
# objects and the FPN-style pixel decoder. 1000 iterations: the 160 training
# scenes are learned by then.
# Run with OMP_NUM_THREADS=1 when the CPU is shared.
_base_ = [
    '../_base_/models/clusterformer-test_inst-demo.py',
    '../_base_/datasets/shapes_coco-instance.py',
    '../_base_/schedules/shapes_1k-iters.py',
]
# The head learns at twice the backbone's rate (the recipe of the instance
# comparison, the stock Mask2Former's config has the same line for its head;
# docs/en/head_comparison.md). mmengine matches the longest custom key
# first and breaks ties alphabetically, so `bbox_head` also takes the head's
# norms and `query_pos` (lr x2, weight decay 0.05, as the stock head's);
# `center_mix`, `level_embed` and `logit_scale` keep their own keys (lr x1,
# no decay).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(bbox_head=dict(lr_mult=2.0))))
