"""The decoder pieces every head shares (mmcf/models/decoder.py, trunk.py): the
nested ``transformer_decoder`` config (old keys refused with their new place),
the Table 6f encoder-center transfer and the decoder's cluster health."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmcf  # noqa: F401  (registers the modules)
from helpers import ROOT, fake_backbone_outputs
from mmcf.models.decoder import CenterQueryInit, ClusterTransformerDecoder

from mmseg.registry import MODELS

DEMO = osp.join(ROOT, 'configs', 'segmentation', 'clusterformer-test_1xb8-1k_shapes-64x64.py')


def _head_cfg():
    return copy.deepcopy(Config.fromfile(DEMO).model.decode_head).to_dict()


def _build(cfg):
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


# ------------------------------------------------------- encoder -> decoder
def test_encoder_center_transfer_starts_as_identity():
    init = CenterQueryInit('encoder', num_centers=16, dim=32, encoder_channels=24,
                           num_encoder_centers=16)
    torch.testing.assert_close(init.center_mix.data, torch.eye(16))
    enc = torch.randn(2, 16, 24)
    coarse = torch.zeros(2, 32, 4, 4)
    # the decoder's initial centers are the projected encoder centers, one each
    torch.testing.assert_close(init(enc, coarse), init.center_proj(enc))


def test_encoder_center_transfer_selects_distinct_centers():
    fewer = CenterQueryInit('encoder', num_centers=7, dim=8, encoder_channels=8,
                            num_encoder_centers=100)
    mix = fewer.center_mix.data
    assert torch.equal(mix.sum(dim=1), torch.ones(7))  # one encoder center per row
    picked = mix.argmax(dim=1)
    assert len(set(picked.tolist())) == 7 and picked.tolist() == sorted(picked.tolist())
    more = CenterQueryInit('encoder', num_centers=100, dim=8, encoder_channels=8,
                           num_encoder_centers=16)
    mix = more.center_mix.data
    assert set(mix.argmax(dim=1).tolist()) == set(range(16))  # every encoder center used
    rows = mix.unique(dim=0)
    assert rows.shape[0] == 100  # rows sharing an encoder center still differ
    assert (mix - (mix > 0.5).float()).abs().max() < 0.05


def test_head_decoder_starts_from_distinct_encoder_centers():
    head = _build(_head_cfg()).eval()
    enc = fake_backbone_outputs()[-1]
    dec0 = head.trunk.query_init(enc, torch.zeros(2, 64, 2, 2))
    # the K decoder centers are distinct: their spread matches the encoder's
    from mmcf.models.recording import cluster_health
    ones = torch.ones(2, 1, dec0.shape[1], 1)
    assert cluster_health(ones, dec0)['spread'] > 0.5


# ------------------------------------------------------------- the config
def test_nested_decoder_config_builds_the_layers():
    cfg = _head_cfg()
    cfg['transformer_decoder'] = dict(
        num_layers=2, layer_cfg=dict(num_heads=4, ffn_channels=32, clustering_cfg=dict(
            num_iters=2, head_dim=16, logits='dot')))
    head = _build(cfg)
    decoder = head.trunk.transformer_decoder
    assert isinstance(decoder, ClusterTransformerDecoder)
    assert head.num_layers == 2 and head.num_stages == 2 and head.num_iters == 2
    assert decoder.layers[0].clustering.logits == 'dot'
    assert decoder.layers[0].ffn.layers[0][0].out_features == 32
    preds = head.train()(fake_backbone_outputs())
    assert len(preds) == 3  # initial centers + 2 layers


def test_old_decoder_keys_are_refused_naming_their_place():
    """One name per option, in one place: flat head keys and clustering keys
    in layer_cfg are refused, each with the place it has now."""
    cfg = _head_cfg()
    cfg['num_layers'] = 2
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_layers'"):
        _build(cfg)
    with pytest.raises(TypeError, match=r'transformer_decoder.layer_cfg: num_iters= is a '
                       r'clustering option; pass clustering_cfg=dict\(num_iters=2\)'):
        ClusterTransformerDecoder(32, num_layers=1, layer_cfg=dict(num_iters=2))
    with pytest.raises(TypeError, match=r"clustering_cfg=dict\(logits='dot'\)"):
        ClusterTransformerDecoder(32, num_layers=1, layer_cfg=dict(cluster_logits='dot'))
    with pytest.raises(TypeError, match=r"clustering_cfg=dict\(type='KMeansClustering'\)"):
        ClusterTransformerDecoder(32, num_layers=1, layer_cfg=dict(center_update='kmeans'))
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_iter'"):
        ClusterTransformerDecoder(32, num_layers=1, layer_cfg=dict(num_iter=2))
    with pytest.raises(ValueError, match='num_layers must be an integer >= 1'):
        ClusterTransformerDecoder(32, num_layers=0)
    with pytest.raises(ValueError, match='must not set dim'):
        ClusterTransformerDecoder(32, layer_cfg=dict(dim=16))


# ---------------------------------------------------------------- health
def test_decoder_cluster_health_per_layer():
    head = _build(_head_cfg()).eval()
    head.record_assignments = 'last'
    with torch.no_grad():
        head(fake_backbone_outputs())
    health = head.cluster_health()
    assert len(health) == 6
    for h in health:
        assert 0.0 <= h['entropy'] <= 1.0 and h['num_centers'] == 7
        assert 1 <= h['used'] <= 7


def test_reset_keeps_the_e_step_temperatures():
    """Xavier is for the matrices; the RCA temperatures keep ``logit_scale``."""
    decoder = ClusterTransformerDecoder(32, num_layers=2, layer_cfg=dict(
        num_heads=2, ffn_channels=32, clustering_cfg=dict(head_dim=16, logit_scale=7.0)))
    decoder.reset_parameters()
    for rca in decoder.rca_modules:
        torch.testing.assert_close(rca.temperature(), torch.full((2, 1, 1), 7.0))
    head = _build(_head_cfg())
    for rca in head.trunk.transformer_decoder.rca_modules:
        torch.testing.assert_close(rca.temperature(),
                                   torch.full_like(rca.temperature(), 5.0))


def test_pixel_decoder_widths_follow_the_head():
    """Both heads build their pixel decoder the same way: the backbone's
    widths and the head's channels are filled in; other widths are refused."""
    cfg = _head_cfg()
    head = _build(cfg)
    assert head.trunk.pixel_decoder.mask_feature.out_channels == cfg['channels']
    cfg['pixel_decoder'] = dict(cfg['pixel_decoder'], out_channels=32)
    with pytest.raises(ValueError, match=r"out_channels \(32\) must equal the head's "
                       r'width \(64\)'):
        _build(cfg)
    from helpers import build_head_from_config
    det = osp.join(ROOT, 'configs', 'detection', 'clusterformer-test_1xb8-1k_shapes-inst.py')
    pixel = Config.fromfile(det).model.bbox_head.pixel_decoder.to_dict()
    with pytest.raises(ValueError, match='feat_channels'):
        build_head_from_config(det, pixel_decoder=dict(pixel, feat_channels=16))


def test_decoder_layer_fused_em_switch():
    """layer_cfg.clustering_cfg.fused reaches the RCA: same keys, same centers and
    gradients fused or plain (float64)."""
    from mmcf.models.decoder import ClusterTransformerDecoder
    torch.manual_seed(0)
    fused = ClusterTransformerDecoder(32, num_layers=2, layer_cfg=dict(
        num_heads=2, ffn_channels=64, clustering_cfg=dict(head_dim=16))).double()
    plain = ClusterTransformerDecoder(32, num_layers=2, layer_cfg=dict(
        num_heads=2, ffn_channels=64, clustering_cfg=dict(head_dim=16, fused=False))).double()
    assert [layer.clustering.fused for layer in plain.layers] == [False, False]
    assert list(fused.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fused.state_dict())
    tokens = [torch.randn(2, 20, 32, dtype=torch.float64)]
    c0 = torch.randn(2, 5, 32, dtype=torch.float64)
    pos = torch.randn(2, 5, 32, dtype=torch.float64)
    outs = []
    for dec in (fused, plain):
        last = [c for _, c, _ in dec(tokens, c0, pos)][-1]
        outs.append((last, torch.autograd.grad(last.square().sum(), list(dec.parameters()))))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for g, r in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(g, r)
