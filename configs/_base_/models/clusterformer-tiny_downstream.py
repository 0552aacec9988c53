# ClusterFormer-Tiny (./clusterformer-tiny.py) as every detection, instance,
# panoptic and semantic segmentation config takes it, under our heads and
# under mmdet's and mmseg's stock heads alike: stochastic depth 0.3 (Swin-T's
# rate in Mask2Former's and UperNet's Swin-T recipes; the Mask R-CNN and
# RetinaNet configs keep their Swin-T recipes' 0.2), and no initialisation
# from weights (`init_cfg=None`: the backbone trains from scratch). Configs
# take `_base_.backbone` or `_base_.backbone_with_centers` as with
# ./clusterformer-tiny.py and drop both after use.
#
# ImageNet-1K weights. Every downstream config has `pretrained = None`: the
# stock-head ones write it over the Swin-T checkpoint of mmdet's configs (so
# this piece cannot hold it: mmengine refuses a key that two bases both
# define), ./clusterformer-tiny_our-heads.py holds it for ours; and init_cfg
# stays None. To start the backbone from a runner checkpoint of
# configs/classification/clusterformer-tiny_16xb64_in1k.py (its backbone is
# read with prefix 'backbone.'), write a child config:
#
#     _base_ = './clusterformer-tiny_8xb2-lsj-50e_coco.py'  # the config to run
#     pretrained = 'work_dirs/clusterformer-tiny_16xb64_in1k/epoch_300.pth'
#     model = dict(backbone=dict(init_cfg=dict(
#         _delete_=True, type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
#
# `_delete_=True` because the inherited init_cfg is None, into which mmengine
# merges no dict. Setting `pretrained` alone loads nothing: a config's values
# are resolved in the file that writes them, so the backbone never sees a
# child's `pretrained`. On the command line (mmengine's --cfg-options takes
# no dict(...) value, and dotted keys into None need `_delete_` too):
#
#     --cfg-options model.backbone.init_cfg._delete_=True \
#         model.backbone.init_cfg.type=Pretrained \
#         model.backbone.init_cfg.checkpoint=PATH \
#         model.backbone.init_cfg.prefix=backbone.
#
# The Small configs take ClusterFormer-Small weights
# (configs/classification/clusterformer-small_16xb64_in1k.py) the same way.
_base_ = './clusterformer-tiny.py'

# merged into both helpers of ./clusterformer-tiny.py
backbone = dict(drop_path_rate=0.3, init_cfg=None)
backbone_with_centers = dict(backbone)
