# ClusterFormer-Tiny (§4.1.1): Swin-T's widths (96, 192, 384, 768) and depths
# (2, 2, 6, 2), returning the four NCHW maps (strides 4-32) as Swin-T does.
# Configs take it as `_base_.backbone` (or `_base_.backbone_with_centers`) and
# set what their recipe chooses: drop_path_rate, and out_indices / out_centers
# where they differ; the downstream configs take it through
# ./clusterformer-tiny_downstream.py (drop-path 0.3, no init_cfg, and how to
# start from ImageNet weights). A config whose model comes from another base
# (mmdet's, mmseg's or mmpretrain's) drops these helpers after use
# (`del _base_.backbone, _base_.backbone_with_centers`), as mmdet's own configs
# do with `del _base_.model`, so that only model.backbone is left of them.
#
# ClusterFormer is mmcf's: a config that takes this base imports mmcf with it.
custom_imports = dict(imports=['mmcf'], allow_failed_imports=False)

# What mmdet's and mmseg's stock heads (Mask R-CNN, RetinaNet, Mask2Former,
# UperNet) take: the maps only, with the arch's clustering defaults (which are
# the paper's numbers below).
backbone = dict(type='ClusterFormer', arch='tiny', out_indices=(0, 1, 2, 3))
# What our heads and the ImageNet head take: §4.1.1's clustering stated (K = 100
# centers per block, recurrent cross-attention clustering with T = 3 EM
# iterations, Table 6b, and head width 32, Table 6d), and the last stage's
# cluster centers returned too (our heads start from them, Table 6f; the §3.3
# classifier reads them).
backbone_with_centers = dict(
    backbone,
    num_centers=100,
    clustering_cfg=dict(num_iters=3, head_dim=32),
    out_centers=True)
