"""ClusterFormer in stock OpenMMLab configs where Swin stands: RetinaNet/FPN,
Mask R-CNN, Mask2Former (mmdet) and UperNet (mmseg) build with the neck
widths of docs/en/get_started.md and train one step on the CPU."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmcf  # noqa: F401
from helpers import ROOT, default_scope_kept
from mmcf.models import ClusterFormer

DET = osp.join(ROOT, 'configs', 'detection')
PAN = osp.join(ROOT, 'configs', 'panoptic')
SEG = osp.join(ROOT, 'configs', 'segmentation')


def test_arch_out_channels():
    assert ClusterFormer.arch_out_channels('tiny') == [96, 192, 384, 768]
    assert ClusterFormer.arch_out_channels('small', (1, 2, 3)) == [192, 384, 768]
    assert ClusterFormer.arch_out_channels('test', (-1, )) == [256]
    custom = dict(embed_dims=[16, 24, 40, 48], depths=[1, 1, 1, 1])
    assert ClusterFormer.arch_out_channels(custom, (0, 3)) == [16, 48]
    with pytest.raises(ValueError, match='out_indices 4'):
        ClusterFormer.arch_out_channels('tiny', (4, ))
    # what the backbone really returns
    model = ClusterFormer('test', out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == ClusterFormer.arch_out_channels('test', (1, 3))


def _det_batch(size=64, masks=True):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    samples = []
    for _ in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                        batch_input_shape=(size, size)))
        gt = InstanceData(bboxes=torch.tensor([[4., 6., 30., 40.], [20., 10., 60., 50.]]),
                          labels=torch.tensor([1, 3]))
        if masks:
            m = torch.zeros(2, size, size, dtype=torch.uint8)
            m[0, 6:40, 4:30] = 1
            m[1, 10:50, 20:60] = 1
            gt.masks = BitmapMasks(m.numpy(), size, size)
        s.gt_instances = gt
        samples.append(s)
    return torch.randn(2, 3, size, size), samples


@pytest.mark.parametrize('name,arch_indices', [
    ('retinanet_clusterformer-tiny_fpn_1x_coco.py', (1, 2, 3)),
    ('mask-rcnn_clusterformer-tiny_fpn_1x_coco.py', (0, 1, 2, 3)),
    ('mask2former_clusterformer-tiny_8xb2-lsj-50e_coco.py', (0, 1, 2, 3))])
def test_mmdet_swaps_build_and_train_a_step(name, arch_indices):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(DET, name))
    model_cfg = cfg.model
    assert model_cfg.backbone.type == 'ClusterFormer'
    widths = ClusterFormer.arch_out_channels('tiny', arch_indices)
    neck_or_head = model_cfg.get('neck') or model_cfg.panoptic_head
    assert list(neck_or_head.in_channels) == widths
    model_cfg.data_preprocessor.pop('batch_augments', None)
    with default_scope_kept():
        init_default_scope('mmdet')
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        model.init_weights()
        inputs, samples = _det_batch()
        losses = model.loss(inputs, samples)
    total = sum(sum(x.sum() for x in v) if isinstance(v, list) else v.sum()
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.patch_embed.projection.weight.grad is not None


def test_mmseg_upernet_swap_keeps_swin_widths():
    cfg = Config.fromfile(osp.join(SEG, 'clusterformer-tiny_upernet_8xb2-160k_ade20k-512x512.py'))
    assert list(cfg.model.decode_head.in_channels) == ClusterFormer.arch_out_channels('tiny')
    assert cfg.model.auxiliary_head.in_channels == ClusterFormer.arch_out_channels('tiny', (2, ))[0]


def test_mask2former_panoptic_swap_builds():
    cfg = Config.fromfile(osp.join(PAN, 'mask2former_clusterformer-tiny_8xb2-lsj-50e_coco-panoptic.py'))
    assert cfg.model.backbone.type == 'ClusterFormer'
    assert list(cfg.model.panoptic_head.in_channels) == ClusterFormer.arch_out_channels('tiny')
