# ClusterFormer-Small + ClusterFormer decode head on ADE20K, §4.1.3 / Table 3.
# Same head, data and schedule as the tiny config (see its comments on the
# 100-epoch / lr 1e-5 choices); only the backbone depth (2-2-18-2) and its
# stochastic depth change. Widths are those of tiny (96..768), so the head's
# in_channels and encoder-center width (768 x 100 centers) are unchanged.
_base_ = './clusterformer-tiny_8xb2-126k_ade20k-640x640.py'

# ImageNet-1K ClusterFormer-Small weights from
# configs/classification/clusterformer-small_16xb64_in1k.py, or None.
pretrained = None

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
        if pretrained else None))
