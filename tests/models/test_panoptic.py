"""Panoptic segmentation (mmdet, §4.1.5): the auxiliary losses of Eq. 7 on
hand-made examples, the panoptic head (targets, Eq. 7's weights, switches,
stuff-only / things-only images), the fusion into mmdet's panoptic output,
the PNG loader without panopticapi, the COCO Panoptic configs, and training
plus evaluation through the runner. CPU, tiny models, small images."""
import math
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

import mmcf  # noqa: F401  (registers the modules)
from helpers import ROOT, build_head_from_config, fake_backbone_outputs, python, run
from demo_configs import DEMO_BY_NAME
from mmcf.models.detection.panoptic_losses import (instance_discrimination_loss,
                                                   mask_id_cross_entropy, pq_style_loss,
                                                   semantic_cross_entropy, soft_dice)

from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import DATASETS, MODELS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks

CFG_DIR = osp.join(ROOT, 'configs', 'panoptic')
DEMO = osp.join(CFG_DIR, 'clusterformer-test_1xb8-1k_shapes-panoptic.py')
TINY = osp.join(CFG_DIR, 'clusterformer-tiny_8xb2-lsj-50e_coco-panoptic.py')
SMALL = osp.join(CFG_DIR, 'clusterformer-small_8xb2-lsj-50e_coco-panoptic.py')
NTH, NST = 4, 3  # the demo's classes: 4 things, 3 stuff


@pytest.fixture(autouse=True)
def mmdet_scope(no_default_scope_between_tests):
    init_default_scope('mmdet')


# --------------------------------------------------------- auxiliary losses
def test_soft_dice_and_pq_style_loss_by_hand():
    probs = torch.tensor([[0.5, 0.5, 0.5, 0.0]], requires_grad=True)
    gt = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # dice = (2 * 1.0 + 1) / (1.5 + 2 + 1) = 2/3
    assert soft_dice(probs, gt).item() == pytest.approx(2 / 3)
    p = torch.tensor([0.8], requires_grad=True)
    q = torch.tensor([0.1, 0.5], requires_grad=True)
    loss = pq_style_loss(probs, gt, p, q, alpha=0.75)
    pos = 0.8 * (1 - 2 / 3) - 2 / 3 * math.log(0.8)
    neg = (-math.log(0.9) - math.log(0.5)) / 2
    assert loss.item() == pytest.approx(0.75 * pos + 0.25 * neg, rel=1e-6)
    loss.backward()
    # the class term sees the mask quality as a fixed weight: d/dp = -0.75 dice / p
    assert p.grad.item() == pytest.approx(-0.75 * (2 / 3) / 0.8, rel=1e-6)
    # and the mask term the class probability: d/dm = -0.75 * 0.8 * d dice / dm
    s = 1.5 + 2 + 1
    ddice = [(2 * t * s - 3) / s**2 for t in (1.0, 1.0, 0.0, 0.0)]
    assert probs.grad[0].tolist() == pytest.approx([-0.75 * 0.8 * d for d in ddice],
                                                   rel=1e-5)
    assert q.grad.tolist() == pytest.approx([0.125 / 0.9, 0.125 / 0.5], rel=1e-6)
    # nothing matched and nothing unmatched: zero, with a graph
    empty = pq_style_loss(probs[:0], gt[:0], p[:0], q[:0])
    assert empty.item() == 0 and empty.requires_grad


def test_mask_id_cross_entropy_by_hand():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 5.0]]]])  # (1, K=2, 1, 2)
    target = torch.tensor([[[0, -1]]])  # pixel 1 belongs to no matched segment
    assert mask_id_cross_entropy(logits, target).item() == pytest.approx(
        math.log(1 + math.exp(-2)))
    target = torch.tensor([[[0, 0]]])  # pixel 1 prefers center 1: -log softmax = 5 + ...
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(5))) / 2
    assert mask_id_cross_entropy(logits, target).item() == pytest.approx(expected)
    assert mask_id_cross_entropy(logits, torch.full((1, 1, 2), -1)).item() == 0


def test_instance_discrimination_by_hand():
    # pixels 0, 1 point along x (segment 0), pixel 2 along y (segment 1),
    # pixel 3 is void: the segment embeddings are the unit x and y vectors
    feats = torch.tensor([[1.0, 2.0, 0.0, 7.0], [0.0, 0.0, 3.0, 7.0]]).reshape(1, 2, 1, 4)
    segs = torch.tensor([[[0, 0, 1, -1]]])
    # every pixel: logits (1/0.5, 0) for its own and the other segment
    expected = math.log(1 + math.exp(-2))
    assert instance_discrimination_loss(feats, segs, temperature=0.5).item() == \
        pytest.approx(expected, rel=1e-6)
    # a pixel pointing half way between the two segments is ambiguous
    feats2 = feats.clone()
    feats2[0, :, 0, 1] = torch.tensor([1.0, 1.0])
    t0 = torch.tensor([1 + 1 / 2**0.5, 1 / 2**0.5])
    t0 = t0 / t0.norm()
    f1 = torch.tensor([1.0, 1.0]) / 2**0.5
    l1 = torch.stack([f1 @ t0, f1 @ torch.tensor([0.0, 1.0])]) / 0.5
    l0 = torch.stack([torch.tensor([1.0, 0.0]) @ t0, torch.tensor(0.0)]) / 0.5
    l2 = torch.stack([torch.tensor([0.0, 1.0]) @ t0, torch.tensor(1.0)]) / 0.5
    want = (F.cross_entropy(torch.stack([l0, l1, l2]), torch.tensor([0, 0, 1]))).item()
    assert instance_discrimination_loss(feats2, segs, temperature=0.5).item() == \
        pytest.approx(want, rel=1e-5)
    # sampling keeps at most num_points pixels; all void: zero with a graph
    g = torch.Generator().manual_seed(0)
    assert torch.isfinite(instance_discrimination_loss(feats, segs, num_points=2,
                                                       generator=g))
    z = instance_discrimination_loss(feats.requires_grad_(), torch.full((1, 1, 4), -1))
    assert z.item() == 0 and z.requires_grad


def test_semantic_cross_entropy_by_hand():
    logits = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # (1, C=2, 1, 2)
    target = torch.tensor([[[1, 255]]])
    assert semantic_cross_entropy(logits, target).item() == pytest.approx(
        math.log(1 + math.exp(-1)))
    assert semantic_cross_entropy(logits, torch.full((1, 1, 2), 255)).item() == 0


# ------------------------------------------------------------------- head
def build_head(**overrides):
    """The demo config's head (64 wide, 20 thing + 3 stuff centers)."""
    return build_head_from_config(DEMO, **overrides)


def _sample(things=((0, (4, 4, 20, 20)), (2, (30, 30, 50, 56))), stuff=((4, 0, 32),
            (6, 32, 64)), size=64):
    """A 64x64 image: thing boxes ``(label, (x1, y1, x2, y2))`` painted over
    stuff bands ``(label, row from, row to)``; the rest is void (255)."""
    sem = np.full((size, size), 255, np.uint8)
    for label, r0, r1 in stuff:
        sem[r0:r1] = label
    masks = np.zeros((len(things), size, size), np.uint8)
    for i, (label, (x1, y1, x2, y2)) in enumerate(things):
        masks[i, y1:y2, x1:x2] = 1
        sem[y1:y2, x1:x2] = label
    gt = InstanceData(labels=torch.tensor([t[0] for t in things], dtype=torch.long),
                      bboxes=torch.tensor([t[1] for t in things],
                                          dtype=torch.float32).reshape(-1, 4),
                      masks=BitmapMasks(masks, size, size))
    return DetDataSample(
        gt_instances=gt, gt_sem_seg=PixelData(sem_seg=torch.from_numpy(sem)[None].long()),
        metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                      batch_input_shape=(size, size), scale_factor=(1.0, 1.0),
                      img_path=f'fake_{len(things)}_{len(stuff)}.png'))


def test_targets_split_things_and_stuff():
    head = build_head()
    t = head._prepare_panoptic_gt(_sample(), (16, 16))
    assert t['things'].labels.tolist() == [0, 2]
    assert t['stuff'].labels.tolist() == [0, 2]  # sky (4) and bricks (6) -> 0, 2
    assert t['stuff'].masks.shape == (2, 64, 64)
    # stuff masks exclude the things painted over them
    assert not (t['stuff'].masks[0] & t['things'].masks[0]).any()
    # segment map at stride 4: things 0, 1, then stuff 2, 3; no void here
    seg = t['seg_map']
    assert seg[2, 2].item() == 0 and seg[10, 10].item() == 1
    assert seg[0, 15].item() == 2 and seg[15, 0].item() == 3
    assert (seg >= 0).all() and t['sem'][2, 2].item() == 0 and t['sem'][0, 15].item() == 4
    # a batch padded below the image: padding is void (-1) and ignored (255)
    s = _sample()
    s.set_metainfo(dict(batch_input_shape=(80, 64)))
    t = head._prepare_panoptic_gt(s, (20, 16))
    assert t['things'].masks.shape == (2, 80, 64) and t['stuff'].masks.shape == (2, 80, 64)
    assert (t['seg_map'][16:] == -1).all() and (t['sem'][16:] == 255).all()
    assert (t['seg_map'][:16] >= 0).all()


def test_loss_terms_weights_and_switches():
    x = fake_backbone_outputs(batch=2)
    samples = [_sample(), _sample(things=((1, (10, 40, 30, 60)), ), stuff=((5, 0, 64), ))]
    head = build_head()
    torch.manual_seed(1)
    losses = head.loss(x, samples)
    for k in ('th_cls', 'th_mask', 'th_dice', 'st_cls', 'st_mask', 'st_dice',
              'aux_pq', 'aux_mask_id'):
        assert f'loss_{k}' in losses and f'd0.loss_{k}' in losses and f'd5.loss_{k}' in losses
    assert 'loss_aux_inst_disc' in losses and 'loss_aux_semantic' in losses
    assert 'd0.loss_aux_semantic' not in losses  # the pixel terms come once
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert head.sem_embed.weight.grad is not None
    assert head.cls_embed.fc2.weight.grad.abs().sum() > 0

    # Eq. 7's lambdas scale exactly their terms
    def terms(**kw):
        h = build_head(**kw)
        torch.manual_seed(1)
        return {k: v.item() for k, v in h.loss(x, samples).items()}
    base = terms(lambda_th=1.0, lambda_st=1.0, lambda_aux=1.0)
    scaled = terms(lambda_th=5.0, lambda_st=3.0, lambda_aux=2.0)
    for k, v in base.items():
        factor = 5.0 if '_th_' in k else 3.0 if '_st_' in k else 2.0
        assert scaled[k] == pytest.approx(factor * v, rel=1e-5), k
    # an auxiliary term's weight scales it; None or weight 0 switches it off
    w = terms(lambda_th=1.0, lambda_st=1.0, aux_losses=dict(mask_id=dict(weight=0.6)))
    assert w['loss_aux_mask_id'] == pytest.approx(2 * base['loss_aux_mask_id'], rel=1e-5)
    off = build_head(aux_losses=dict(pq=None, semantic=dict(weight=0),
                                     inst_disc=None, mask_id=None))
    assert not hasattr(off, 'sem_embed')
    assert not any('aux' in k for k in off.loss(x, samples))


def test_bad_head_arguments():
    with pytest.raises(ValueError, match="unknown term 'pq_loss'"):
        build_head(aux_losses=dict(pq_loss=dict(weight=1.0)))
    with pytest.raises(ValueError, match=r"aux_losses.pq: unknown option\(s\) \['beta'\]"):
        build_head(aux_losses=dict(pq=dict(beta=1.0)))
    with pytest.raises(TypeError, match="does not take 'num_classes'"):
        build_head(num_classes=7)
    head = build_head()
    s = _sample()
    del s.gt_sem_seg
    with pytest.raises(ValueError, match='fake_2_2.png: the panoptic head needs gt_sem_seg'):
        head.loss(fake_backbone_outputs(batch=1), [s])
    s = _sample(things=((5, (4, 4, 20, 20)), ))
    with pytest.raises(ValueError, match='thing label 5 is out of range'):
        head.loss(fake_backbone_outputs(batch=1), [s])


@pytest.mark.parametrize('kind', ['stuff only', 'things only', 'all void'])
def test_stuff_only_things_only_and_empty_images_train(kind):
    sample = {'stuff only': _sample(things=()),
              'things only': _sample(stuff=()),
              'all void': _sample(things=(), stuff=())}[kind]
    head = build_head()
    losses = head.loss(fake_backbone_outputs(batch=1), [sample])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    if kind != 'things only':  # no object: the mask losses of things are zero
        assert losses['loss_th_mask'].item() == 0 and losses['loss_th_dice'].item() == 0
    if kind != 'stuff only':
        assert losses['loss_st_mask'].item() == 0


def test_mask_id_targets_follow_the_matching():
    """The layer-wise auxiliary terms read the Hungarian matching: with a
    given matching, mask-ID and PQ-style equal the formulas on the matched
    centers."""
    head = build_head(aux_losses=dict(inst_disc=None, semantic=None))
    Q = head.num_thing_queries
    t = head._prepare_panoptic_gt(_sample(), (16, 16))
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(1, Q + NST, NTH + NST, generator=g)
    masks = torch.randn(1, Q + NST, 16, 16, generator=g)
    pos, gt_idx = torch.tensor([3, 7]), torch.tensor([1, 0])  # center 3 <- thing 1
    th, st = head._split(cls)
    present = torch.zeros(1, NST, dtype=torch.bool)
    present[0, t['stuff'].labels] = True
    out = head._layer_aux_losses(th, st, masks, [(pos, gt_idx)], present, [t])
    # mask-ID target: thing 0 -> center 7, thing 1 -> center 3, sky -> Q + 0,
    # bricks -> Q + 2
    centers = torch.tensor([7, 3, Q + 0, Q + 2])
    target = centers[t['seg_map']]
    want = F.cross_entropy(masks, target[None]) * 0.3
    assert out['loss_aux_mask_id'].item() == pytest.approx(want.item(), rel=1e-5)
    # PQ-style on the same pairs
    probs = masks.softmax(1)[0, centers].flatten(1)
    p = torch.stack([th[0, 7, 0].sigmoid(), th[0, 3, 2].sigmoid(),
                     st[0, 0].sigmoid(), st[0, 2].sigmoid()])
    unmatched = [q for q in range(Q) if q not in (3, 7)]
    others = torch.cat([th[0, unmatched].sigmoid().amax(-1), st[0, 1:2].sigmoid()])
    want = 3.0 * pq_style_loss(probs, t['small'].flatten(1).float(), p, others)
    assert out['loss_aux_pq'].item() == pytest.approx(want.item(), rel=1e-5)


# ------------------------------------------------------------------ fusion
def _fusion_case():
    """3 thing centers, 3 stuff centers (Q_th = 3), 4x6 image.

    thing 0 (cross, p 0.9) covers columns 0-2; thing 1 (square, p 0.8)
    columns 2-3 and loses column 2 to thing 0; thing 2 scores 0.2 (dropped);
    sky (p 0.95) covers rows 0-1 of columns 4-5, grass (0.9) rows 2-3;
    bricks scores 0.1."""
    H, W = 4, 6
    m = torch.zeros(6, H, W)
    m[0, :, 0:3] = 0.9
    m[1, :, 2:4] = 0.8
    m[2] = 1.0
    m[3, 0:2, 4:] = 0.6
    m[4, 2:4, 4:] = 0.6
    th = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.0, 0.0, 0.8, 0.1], [0.2, 0.0, 0.0, 0.0]])
    st = torch.tensor([0.95, 0.9, 0.1])
    return th, st, m


def _fusion_head(**test_cfg):
    from mmcf.models.detection import ClusterFormerPanopticFusionHead
    return ClusterFormerPanopticFusionHead(NTH, NST, test_cfg=test_cfg)


def test_panoptic_fusion_keeps_things_and_stuff_apart():
    head = _fusion_head(object_mask_thr=0.5, iou_thr=0.5, max_per_img=5)
    th, st, m = _fusion_case()
    pan = head.panoptic_fusion(th, st, m)
    assert pan.shape == (4, 6) and pan.dtype == torch.int32
    cross = 1 + 1 * INSTANCE_OFFSET
    square = 2 + 2 * INSTANCE_OFFSET
    want = torch.tensor([[cross] * 3 + [square] + [4] * 2] * 2 +
                        [[cross] * 3 + [square] + [5] * 2] * 2, dtype=torch.int32)
    assert torch.equal(pan, want)
    # one label per pixel, things carry instance ids, stuff none
    ids = set(pan.unique().tolist())
    assert ids == {cross, square, 4, 5}
    # thing 1 kept 1 of its 2 columns (0.5 of its mask): with iou_thr 0.8 it
    # is dropped and its pixels are VOID (num_classes), never given to another
    head.test_cfg['iou_thr'] = 0.8
    pan = head.panoptic_fusion(th, st, m)
    assert (pan[:, 3] == NTH + NST).all() and (pan[:, :3] == cross).all()
    # nothing above the threshold: all VOID
    head.test_cfg['object_mask_thr'] = 0.99
    assert (head.panoptic_fusion(th, st, m) == NTH + NST).all()


def test_instance_and_semantic_outputs():
    head = _fusion_head(max_per_img=2)
    th, st, m = _fusion_case()
    ins = head.instance_results(th, m)
    assert ins.labels.tolist() == [1, 2] and ins.masks.shape == (2, 4, 6)
    assert ins.scores.tolist() == sorted(ins.scores.tolist(), reverse=True)
    assert ins.bboxes[0].tolist() == [0, 0, 3, 4]  # the mask's box
    assert ins.scores[0].item() == pytest.approx(0.9 * 0.9)
    sem = head.semantic_results(th, st, m)
    assert sem.shape == (4, 6)
    assert sem[0, 0].item() == 1 and sem[0, 3].item() == 2 and sem[0, 5].item() == 4
    assert sem[3, 5].item() == 5


def test_detector_predicts_mmdet_panoptic_fields():
    cfg = Config.fromfile(DEMO)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    samples = [DetDataSample(metainfo=dict(
        img_shape=(48, 64), ori_shape=(24, 32), batch_input_shape=(64, 64),
        scale_factor=(2.0, 2.0), img_path='x.png')) for _ in range(2)]
    with torch.no_grad():
        out = model.predict(torch.randn(2, 3, 64, 64), samples)
    s = out[0]
    assert s.pred_panoptic_seg.sem_seg.shape == (1, 24, 32)
    assert s.pred_sem_seg.sem_seg.shape == (1, 24, 32)
    assert s.pred_instances.masks.shape[-2:] == (24, 32)
    assert len(s.pred_instances) == 20 * NTH  # all (thing center, class) pairs
    labels = s.pred_panoptic_seg.sem_seg % INSTANCE_OFFSET
    assert (labels <= NTH + NST).all()


# ------------------------------------------------------- PNG loading, data
def _write_panoptic(tmp_path, ids, segments):
    png = tmp_path / 'p.png'
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    mmcv.imwrite(rgb[..., ::-1], str(png))  # imwrite takes BGR
    return dict(seg_map_path=str(png), segments_info=segments, ori_shape=ids.shape)


def test_png_loader_without_panopticapi(tmp_path):
    ids = np.zeros((8, 8), np.int64)
    ids[:4] = 300  # sky, id needs the G channel
    ids[4:] = 2
    ids[5:7, 1:3] = 7  # a circle on grass
    segs = [dict(id=300, category=4, is_thing=False), dict(id=2, category=5, is_thing=False),
            dict(id=7, category=0, is_thing=True)]
    load = TRANSFORMS.build(dict(type='LoadCocoPanopticAnnotations', with_bbox=False,
                                 with_label=False))
    out = load(_write_panoptic(tmp_path, ids, segs))
    assert out['gt_masks'].masks.shape == (1, 8, 8) and out['gt_masks'].masks[0].sum() == 4
    seg = out['gt_seg_map']
    assert (seg[:4] == 4).all() and seg[5, 1] == 0 and seg[7, 7] == 5
    # a PNG id without segments_info entry, a listed id absent from the PNG
    with pytest.raises(ValueError, match=r'p.png: segment id\(s\) \[7\] are in the PNG'):
        load(_write_panoptic(tmp_path, ids, segs[:2]))
    with pytest.raises(ValueError, match=r'p.png: segments_info id\(s\) \[9\] have no pixel'):
        load(_write_panoptic(tmp_path, ids, segs + [dict(id=9, category=1, is_thing=True)]))
    # a label past uint8 (255 is void) keeps its value
    wide = [dict(s, category=300) if s['id'] == 2 else s for s in segs]
    seg = load(_write_panoptic(tmp_path, ids, wide))['gt_seg_map']
    assert seg[7, 7] == 300 and seg[0, 0] == 4
    lenient = TRANSFORMS.build(dict(type='LoadCocoPanopticAnnotations', with_bbox=False,
                                    with_label=False, strict=False))
    out = lenient(_write_panoptic(tmp_path, ids, segs[:2]))
    assert out['gt_seg_map'][5, 1] == 255  # mmdet's behaviour: void


# --------------------------------------------------------------- configs
def _fake_panoptic_batch(model, size=128):
    """Two COCO-shaped panoptic images (3 things, 2 stuff regions)."""
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(2):
        s = _sample(things=((0, (8, 8, 60, 50)), (5, (70, 20, 120, 100)),
                            (79, (30, 60, 90, 120))),
                    stuff=((80, 0, 64), (132, 64, 128)), size=size)
        samples.append(s)
    inputs = [torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8))
              for _ in range(2)]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)


@pytest.mark.parametrize('path,arch', [(TINY, 'tiny'), (SMALL, 'small')])
def test_coco_panoptic_configs_follow_the_paper_and_train_an_iteration(path, arch):
    cfg = Config.fromfile(path)
    head = cfg.model.bbox_head
    assert cfg.model.backbone.arch == arch and cfg.model.backbone.out_centers
    assert head.num_things_classes == 80 and head.num_stuff_classes == 53
    decoder = head.transformer_decoder
    assert head.num_queries == 100 and decoder.num_layers == 6
    assert decoder.layer_cfg.clustering_cfg.num_iters == 3
    assert (head.lambda_th, head.lambda_st, head.lambda_aux) == (5.0, 3.0, 1.0)
    assert set(head.aux_losses) == {'pq', 'mask_id', 'inst_disc', 'semantic'}
    assert head.loss_cls.use_sigmoid and head.center_init == 'encoder'
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.train_cfg.max_iters == 368750  # 50 epochs at batch 16
    pipe = cfg.train_dataloader.dataset.pipeline
    jitter = [t for t in pipe if t.type == 'RandomResize'][0]
    crop = [t for t in pipe if t.type == 'RandomCrop'][0]
    assert jitter.ratio_range == (0.1, 2.0) and tuple(crop.crop_size) == (1024, 1024)
    test_resize = [t for t in cfg.val_dataloader.dataset.pipeline
                   if t.type in ('Resize', 'SafeResize')][0]
    assert tuple(test_resize.scale) == (1333, 800)
    assert [e.type for e in cfg.val_evaluator] == ['PanopticQualityMetric', 'CocoMetric',
                                                   'SemSegMetric']
    for p in (pipe, cfg.val_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
        assert 'LoadPanopticAnnotations' not in [t.type for t in p]  # needs panopticapi

    cfg.model.data_preprocessor.batch_augments = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = _fake_panoptic_batch(model)
    losses = model(**data, mode='loss')
    assert {'loss_th_cls', 'loss_st_mask', 'loss_aux_pq', 'd5.loss_aux_mask_id',
            'loss_aux_inst_disc', 'loss_aux_semantic'} <= set(losses)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.stages[0].blocks[0].clustering.q.weight.grad is not None


def test_coco_panoptic_pipelines_on_coco_format_data(shapes_root):
    """The LSJ train pipeline and the 800-px test pipeline on the embedded
    COCO panoptic split (64x64 scenes standing in for COCO images)."""
    cfg = Config.fromfile(TINY)
    coco = osp.join(str(shapes_root), 'coco')
    meta = dict(classes=('circle', 'cross', 'square', 'triangle', 'sky', 'grass', 'bricks'),
                thing_classes=('circle', 'cross', 'square', 'triangle'),
                stuff_classes=('sky', 'grass', 'bricks'))
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val')):
        ds = loader.dataset
        ds.data_root = coco
        ds.ann_file = f'annotations/panoptic_{split}.json'
        ds.data_prefix = dict(img=f'{split}/', seg=f'panoptic_{split}/')
        ds.metainfo = meta
        sample = DATASETS.build(ds)[0]['data_samples']
        h, w = sample.img_shape
        sem = sample.gt_sem_seg.sem_seg
        if split == 'train':
            assert max(h, w) <= 1024 and sem.shape[-2:] == (h, w)
            assert sample.gt_instances.masks.masks.shape[-2:] == (h, w)
        else:
            assert (h, w) == (800, 800) and sem.shape[-2:] == (64, 64)
        labels = set(sem.unique().tolist())
        assert labels <= set(range(7)) | {255} and labels & {4, 5, 6}


# ------------------------------------------------------------ the runner
# the config pointed at the shapes_root fixture, then extra --cfg-options
_demo_options = DEMO_BY_NAME['panoptic'].cli_options


def test_train_and_panoptic_evaluation_through_the_runner(shapes_root, tmp_path):
    work = str(tmp_path / 'pan')
    _, out = run([python(), 'tools/train.py', DEMO, '--work-dir', work,
                  *_demo_options(shapes_root, [
                      'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                      'train_dataloader.batch_size=2', 'default_hooks.logger.interval=2',
                      'default_hooks.checkpoint.interval=4'])])
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    for key in ('coco_panoptic/PQ', 'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st',
                'coco/segm_mAP', 'mIoU'):
        assert f'{key}: ' in out, key
    assert 'loss_aux_pq' in out and 'loss_th_cls' in out
    # tools/test.py on the checkpoint: the same metrics, as JSON
    _, out = run([python(), 'tools/test.py', DEMO, osp.join(work, 'iter_4.pth'),
                  '--work-dir', work, *_demo_options(shapes_root)])
    assert 'coco_panoptic/PQ: ' in out
    # DetInferencer returns the panoptic data samples (its dict output needs
    # panopticapi inside mmdet)
    from mmdet.apis import DetInferencer
    img = osp.join(str(shapes_root), 'coco', 'val', '0001.png')
    inferencer = DetInferencer(model=DEMO, weights=osp.join(work, 'iter_4.pth'), device='cpu',
                               show_progress=False)
    pred = inferencer(img, return_datasamples=True, no_save_vis=True)['predictions'][0]
    assert pred.pred_panoptic_seg.sem_seg.shape == (1, 64, 64)
    assert pred.pred_sem_seg.sem_seg.shape == (1, 64, 64)
