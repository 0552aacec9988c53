"""Object detection and instance segmentation (mmdet): the ClusterFormer
detection head (matching, losses, encoder-center queries, outputs in image
coordinates), bad annotations, the configs, the runner with CocoMetric,
DetInferencer and the Mask R-CNN swap. CPU, tiny models, small images."""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmcf  # noqa: F401  (registers the modules)
from helpers import ROOT, build_head_from_config, fake_backbone_outputs, python, run
from demo_configs import DEMO_BY_NAME

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks

CFG_DIR = osp.join(ROOT, 'configs', 'detection')
DEMO = osp.join(CFG_DIR, 'clusterformer-test_1xb8-1k_shapes-inst.py')
DEMO_DET = osp.join(CFG_DIR, 'clusterformer-test-det_1xb8-1k_shapes.py')
TINY = osp.join(CFG_DIR, 'clusterformer-tiny_8xb2-lsj-50e_coco.py')
SMALL = osp.join(CFG_DIR, 'clusterformer-small_8xb2-lsj-50e_coco.py')
TINY_DET = osp.join(CFG_DIR, 'clusterformer-tiny-det_8xb2-lsj-50e_coco.py')
SMALL_DET = osp.join(CFG_DIR, 'clusterformer-small-det_8xb2-lsj-50e_coco.py')
MASK_RCNN = osp.join(CFG_DIR, 'mask-rcnn_clusterformer-tiny_fpn_1x_coco.py')


@pytest.fixture(autouse=True)
def mmdet_scope(no_default_scope_between_tests):
    """Data sets and pipelines build their transforms by name in mmdet."""
    init_default_scope('mmdet')

def build_head(**overrides):
    """The demo config's head (64 wide), with ``overrides`` replacing keys."""
    return build_head_from_config(DEMO, **overrides)


def meta(img_shape=(40, 40), pad=(64, 64), scale=(1.0, 1.0), ori=None):
    return dict(img_shape=img_shape, batch_input_shape=pad, scale_factor=scale,
                ori_shape=ori or img_shape, img_path='fake.png')


# ---------------------------------------------------------- matching, losses
def _two_objects():
    """Two objects and three predictions: query 2 fits object 0, query 0
    fits object 1, query 1 fits nothing."""
    H = W = 40
    gt_boxes = torch.tensor([[0., 0., 20., 20.], [20., 20., 40., 40.]])
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, :20, :20] = True
    masks[1, 20:, 20:] = True
    gt = InstanceData(labels=torch.tensor([0, 2]), bboxes=gt_boxes, masks=masks)
    # normalised (cx, cy, w, h)
    boxes = torch.tensor([[0.74, 0.76, 0.5, 0.48],   # ~ object 1
                          [0.5, 0.5, 0.1, 0.1],      # nothing
                          [0.26, 0.25, 0.52, 0.5]])  # ~ object 0
    cls = torch.full((3, 3), -4.0)
    cls[0, 2] = 3.0
    cls[2, 0] = 2.0
    cls[1, 1] = -1.0
    mask_logits = torch.full((3, 10, 10), -8.0)  # stride 4 of the 40x40 image
    mask_logits[0, 5:, 5:] = 8.0
    mask_logits[2, :5, :5] = 8.0
    return gt, cls, boxes, mask_logits


def _giou(a, b):
    """GIoU of two xyxy boxes, from its definition."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


def test_hungarian_matching_on_two_objects():
    head = build_head(num_classes=3, num_queries=3)
    gt, cls, boxes, mask_logits = _two_objects()
    img_meta = meta(pad=(40, 40))
    gt = head._prepare_gt(gt, img_meta)
    labels, label_w, box_t, box_w, pos, pos_gt = head._get_targets_single(
        cls, boxes, mask_logits, gt, img_meta)
    assert pos.tolist() == [0, 2] and pos_gt.tolist() == [1, 0]
    assert labels.tolist() == [2, 3, 0]  # 3 = no object
    assert label_w.tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(box_t[0], torch.tensor([0.75, 0.75, 0.5, 0.5]))
    assert torch.allclose(box_t[2], torch.tensor([0.25, 0.25, 0.5, 0.5]))
    assert box_t[1].abs().sum() == 0 and box_w[1].sum() == 0 and box_w[0].sum() == 4


def test_losses_equal_the_formulas_on_two_objects():
    # uniform random mask points (no uncertainty sampling) for the mask check
    cfg = copy.deepcopy(Config.fromfile(DEMO).model.train_cfg).to_dict()
    cfg.update(oversample_ratio=1.0, importance_sample_ratio=0.0)
    head = build_head(num_classes=3, num_queries=3, train_cfg=cfg)
    gt, cls, boxes, mask_logits = _two_objects()
    img_meta = meta(pad=(40, 40))
    gts = [head._prepare_gt(gt, img_meta)]
    losses = head._loss_by_feat_single(cls[None], boxes[None], mask_logits[None], gts,
                                       [img_meta])
    # classes: sigmoid focal loss (gamma 2, alpha 0.25) over every (query,
    # class), summed, / 2 matched, x2
    target = torch.zeros(3, 3)
    target[0, 2] = target[2, 0] = 1.0
    p = cls.sigmoid()
    focal = -(0.25 * target * (1 - p)**2 * p.log()
              + 0.75 * (1 - target) * p**2 * (1 - p).log()).sum()
    assert torch.allclose(losses['loss_cls'], 2.0 * focal / 2, rtol=1e-5)
    # plain BCE, the literal reading of §4.1.2, as an option
    bce_head = build_head(num_classes=3, num_queries=3, train_cfg=cfg, loss_cls=dict(
        type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0))
    bce_losses = bce_head._loss_by_feat_single(cls[None], boxes[None], mask_logits[None],
                                               gts, [img_meta])
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).sum()
    assert torch.allclose(bce_losses['loss_cls'], 2.0 * bce / 2, rtol=1e-5)
    # boxes: L1 on normalised cxcywh x5, GIoU on pixels x2, / 2 matched
    t = torch.tensor([[0.75, 0.75, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5]])
    l1 = (boxes[[0, 2]] - t).abs().sum()
    assert torch.allclose(losses['loss_bbox'], 5.0 * l1 / 2, rtol=1e-5)

    def xyxy(b):
        cx, cy, w, h = (float(v) * 40 for v in b)
        return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    giou = sum(1 - _giou(xyxy(boxes[q]), xyxy(t[i])) for i, q in enumerate([0, 2]))
    assert abs(float(losses['loss_iou']) - 2.0 * giou / 2) < 1e-4
    # masks: the right masks cost little, the inverted ones a lot
    bad = head._loss_by_feat_single(cls[None], boxes[None], -mask_logits[None], gts,
                                    [img_meta])
    assert losses['loss_dice'] < 0.2 * bad['loss_dice']
    assert losses['loss_mask'] < 0.2 * bad['loss_mask']
    assert all(torch.isfinite(v) for v in losses.values())


def test_detection_only_head_has_no_mask_branch():
    costs = [dict(type='FocalLossCost', weight=2.0),
             dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
             dict(type='IoUCost', iou_mode='giou', weight=2.0)]
    head = build_head(num_classes=3, num_queries=3, with_mask=False,
                      train_cfg=dict(assigner=dict(type='HungarianAssigner',
                                                   match_costs=costs)))
    assert not hasattr(head, 'mask_embed') and not hasattr(head, 'loss_dice')
    cls_l, box_l, mask_l = head(fake_backbone_outputs(batch=1))
    assert all(m is None for m in mask_l)
    gt, _, _, _ = _two_objects()
    del gt.masks
    s = DetDataSample(gt_instances=gt, metainfo=meta(pad=(64, 64)))
    losses = head.loss(fake_backbone_outputs(batch=1), [s])
    assert 'loss_mask' not in losses and {'loss_cls', 'loss_bbox', 'loss_iou'} <= set(losses)
    # without masks the default match costs have no mask term ...
    assert [type(c).__name__ for c in build_head(with_mask=False).assigner.match_costs] == \
        ['FocalLossCost', 'BBoxL1Cost', 'IoUCost']
    # ... and mask costs without a mask branch are refused, naming the costs
    mask_costs = costs + [dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)]
    with pytest.raises(ValueError, match='DiceCost'):
        build_head(with_mask=False, train_cfg=dict(
            assigner=dict(type='HungarianAssigner', match_costs=mask_costs)))


def test_every_layer_is_supervised():
    head = build_head()
    gt, _, _, _ = _two_objects()
    gt.labels = torch.tensor([0, 3])
    s = DetDataSample(gt_instances=gt, metainfo=meta(pad=(64, 64)))
    losses = head.loss(fake_backbone_outputs(batch=1), [s])
    # d0 = initial centers, d1..d5 = decoder layers 1-5, no prefix = layer 6
    for name in ('loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice'):
        assert name in losses and 'd5.' + name in losses and 'd0.' + name in losses
        assert 'd6.' + name not in losses
    total = sum(losses.values())
    total.backward()
    assert head.trunk.query_init.center_mix.grad.abs().sum() > 0


def test_single_output_pixel_decoder_levels_are_pooled_and_trained():
    """An FPN-style pixel decoder (one stride-4 output): the decoder layers
    cluster I^l pooled from it (§3.3, Eq. 4 "by standard pooling"), coarse
    to fine, and every layer is supervised and trains the decoder."""
    head = build_head(pixel_decoder=dict(
        type='mmdet.PixelDecoder', norm_cfg=dict(type='GN', num_groups=8),
        act_cfg=dict(type='ReLU')))
    assert not head.trunk.multi_scale_decoder and head.num_levels == 3
    feats = fake_backbone_outputs(batch=1)
    maps, _ = head.trunk.split_inputs(feats)
    mask_feature, levels = head.trunk.pixel_decode(maps)
    assert mask_feature.shape[-2:] == (16, 16)
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(2, 2), (4, 4), (8, 8)]
    assert torch.allclose(levels[1], mask_feature.reshape(1, 64, 4, 4, 4, 4).mean((3, 5)),
                          atol=1e-6)
    gt, _, _, _ = _two_objects()
    gt.labels = torch.tensor([0, 3])
    s = DetDataSample(gt_instances=gt, metainfo=meta(pad=(64, 64)))
    losses = head.loss(feats, [s])
    assert 'd5.loss_mask' in losses and 'loss_mask' in losses
    sum(losses.values()).backward()
    assert head.trunk.pixel_decoder.mask_feature.weight.grad.abs().sum() > 0


def test_cluster_box_reference_is_the_extent_of_the_cluster():
    """box_ref='cluster': a center assigned uniformly to a rectangle of the
    token grid gets that rectangle as its reference box (normalised to the
    image, which here is the left half of the padded input)."""
    from mmcf.models.detection.boxes import cluster_boxes
    h = w = 8
    m = torch.zeros(1, 2, 3, h, w)  # (B, heads, K, h, w)
    m[0, :, 0, 2:6, 0:4] = 1.0       # x in [0, 0.5], y in [0.25, 0.75] of the input
    m[0, :, 1] = 1.0                 # the whole grid
    m[0, :, 2, 7, 7] = 1.0           # one token
    extent = torch.tensor([[1.0, 1.0], [2.0, 1.0]])
    for e, (cx, width) in zip(extent, ((0.25, 0.5), (0.5, 1.0))):
        box = cluster_boxes(m.flatten(3), (h, w), e[None])[0]
        # a uniform region of n cells has sqrt(12) * std = (n^2 - 1)^0.5 / n of its size
        shrink = (15 / 16) ** 0.5
        assert torch.allclose(box[0], torch.tensor([cx, 0.5, width * shrink, 0.5 * shrink]),
                              atol=1e-4)
        assert torch.allclose(box[1, :2], torch.tensor([cx * 2, 0.5]).clamp(max=1 - 1e-3),
                              atol=1e-4)
        assert box[2, 2] <= 1e-3 + 1e-6 and box[2, 3] <= 1e-3 + 1e-6  # clamped


def test_mask_box_reference_is_the_box_around_the_mask():
    from mmcf.models.detection.boxes import mask_boxes
    logits = torch.full((1, 2, 16, 16), -5.0)
    logits[0, 0, 4:8, 2:10] = 5.0  # x in [2/16, 10/16], y in [4/16, 8/16]
    fallback = torch.full((1, 2, 4), 0.3)
    box = mask_boxes(logits, fallback, torch.tensor([[1.0, 2.0]]))
    want = torch.tensor([6 / 16, 6 / 16 * 2, 8 / 16, 4 / 16 * 2])
    assert torch.allclose(box[0, 0], want)
    assert torch.equal(box[0, 1], fallback[0, 1])  # empty mask


# ---------------------------------------------------------- encoder centers
@pytest.mark.parametrize('center_init', ['encoder', 'free', 'feature'])
def test_decoder_uses_encoder_centers_only_when_asked(center_init):
    head = build_head(center_init=center_init).eval()
    feats = fake_backbone_outputs(batch=1)
    other = feats[:4] + (torch.randn_like(feats[4]) * 3, )
    with torch.no_grad():
        a = head(feats)
        b = head(other)
    same = all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))
    assert same == (center_init != 'encoder')
    if center_init == 'encoder':
        # the initial centers are exactly W . LN(Linear(E))
        q = head.trunk.query_init
        want = torch.einsum('kj,bjd->bkd', q.center_mix, q.center_proj(feats[4]))
        assert torch.allclose(q(feats[4], torch.zeros(1, 64, 2, 2)), want)


def test_encoder_init_needs_the_centers():
    head = build_head()
    with pytest.raises(ValueError, match='out_centers=True'):
        head(fake_backbone_outputs(batch=1)[:4])
    cfg = Config.fromfile(DEMO).model
    cfg.backbone.out_centers = False
    with pytest.raises(ValueError, match='out_centers=True'):
        MODELS.build(cfg)


# ---------------------------------------------------- outputs in image pixels
def test_boxes_and_masks_in_original_image_coordinates():
    """A 24x16 (WxH) image resized x2 to 48x32, padded to 64x64: the box and
    mask of a prediction come back in the original image's pixels."""
    head = build_head(num_classes=3, num_queries=2,
                      test_cfg=dict(max_per_img=100, mask_thr=0.5, box_source='regress'))
    cls = torch.full((1, 2, 3), -6.0)
    cls[0, 0, 1] = 5.0
    # box [12, 4, 36, 12] in the resized 48x32 image
    boxes = torch.tensor([[[0.5, 0.25, 0.5, 0.25], [0.5, 0.5, 0.2, 0.2]]])
    masks = torch.full((1, 2, 16, 16), -10.0)  # stride 4 of the 64x64 input
    masks[0, 0, 1:3, 3:9] = 10.0               # the same box, in cells
    img_meta = meta(img_shape=(32, 48), pad=(64, 64), scale=(2.0, 2.0), ori=(16, 24))
    res = head.predict_by_feat(cls, boxes, masks, [img_meta], rescale=True)[0]
    assert len(res) == 6  # top-k over 2 queries x 3 classes
    assert res.labels[0] == 1 and res.scores[0] > 0.9
    assert torch.allclose(res.bboxes[0], torch.tensor([6., 2., 18., 6.]))
    assert res.masks.shape == (6, 16, 24) and res.masks.dtype == torch.bool
    ys, xs = torch.nonzero(res.masks[0], as_tuple=True)
    assert abs(int(xs.min()) - 6) <= 1 and abs(int(xs.max()) + 1 - 18) <= 1
    assert abs(int(ys.min()) - 2) <= 1 and abs(int(ys.max()) + 1 - 6) <= 1
    # without rescale: the resized image's pixels
    res = head.predict_by_feat(cls, boxes, masks, [img_meta], rescale=False)[0]
    assert torch.allclose(res.bboxes[0], torch.tensor([12., 4., 36., 12.]))
    assert res.masks.shape[-2:] == (32, 48)


def test_box_source_mask_gives_the_tight_box_of_each_output_mask():
    """test_cfg.box_source='mask' (the default with masks): Mask2Former's
    boxes, the tight box of the output mask in the original image, whatever
    the box branch says; 'regress' gives the box branch's."""
    head = build_head(num_classes=3, num_queries=2)
    cls = torch.full((1, 2, 3), -6.0)
    cls[0, 0, 1] = 5.0
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2]]])  # wrong box
    masks = torch.full((1, 2, 16, 16), -10.0)
    masks[0, 0, 1:3, 3:9] = 10.0  # input pixels x 12-36, y 4-12 (before rescale)
    img_meta = meta(img_shape=(32, 48), pad=(64, 64), scale=(2.0, 2.0), ori=(16, 24))
    res = head.predict_by_feat(cls, boxes, masks, [img_meta], rescale=True)[0]
    assert res.labels[0] == 1
    ys, xs = torch.nonzero(res.masks[0], as_tuple=True)
    expect = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float)
    assert torch.equal(res.bboxes[0], expect)
    assert abs(float(res.bboxes[0, 0]) - 6) <= 1 and abs(float(res.bboxes[0, 2]) - 18) <= 1
    regress = build_head(num_classes=3, num_queries=2,
                         test_cfg=dict(max_per_img=100, mask_thr=0.5, box_source='regress'))
    res = regress.predict_by_feat(cls, boxes, masks, [img_meta], rescale=True)[0]
    assert torch.allclose(res.bboxes[0], torch.tensor([3.6, 2.4, 6.0, 4.0]))
    with pytest.raises(ValueError, match='box_source'):
        build_head(num_classes=3, test_cfg=dict(box_source='both')).predict_by_feat(
            cls, boxes, masks, [img_meta])


def test_mask_prior_changes_the_e_steps_and_trains():
    """assign_prior='mask': every decoder layer's E-step takes log sigmoid of
    the masks its input centers predict; the same weights give other centers
    than without the prior, and a training step reaches every parameter the
    plain head trains."""
    torch.manual_seed(0)
    plain = build_head(num_classes=3)
    prior = build_head(num_classes=3, assign_prior='mask')
    prior.load_state_dict(plain.state_dict())
    feats = fake_backbone_outputs()
    samples = _det_samples()
    seen = []
    layer0 = prior.trunk.transformer_decoder.layers[0].clustering
    orig = layer0.forward

    def spy(x, centers, keep_all=False, prior=None, **kwargs):
        seen.append(prior)
        return orig(x, centers, keep_all=keep_all, prior=prior, **kwargs)
    layer0.forward = spy
    out_plain = plain(feats, samples)
    out_prior = prior(feats, samples)
    layer0.forward = orig
    # the prior of layer 0: log sigmoid of the initial centers' masks, resized
    p = seen[0]
    h, w = feats[3].shape[-2:]  # layer 0 clusters the coarsest level (stride 32)
    assert p.shape == (2, h * w, plain.num_queries) and (p <= 0).all()
    assert not p.requires_grad
    assert torch.allclose(out_plain[0][0], out_prior[0][0])  # initial centers
    assert not torch.allclose(out_plain[0][-1], out_prior[0][-1])
    losses = prior.loss(feats, samples)
    sum(losses.values()).backward()
    no_grad = [n for n, q in prior.named_parameters() if q.requires_grad and q.grad is None]
    assert not no_grad
    with pytest.raises(ValueError, match="assign_prior='mask' needs the mask branch"):
        build_head(num_classes=3, with_mask=False, assign_prior='mask',
                   train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
                       dict(type='FocalLossCost', weight=2.0)])))
    with pytest.raises(ValueError, match='assign_prior must be one of'):
        build_head(num_classes=3, assign_prior='boxes')


def _det_samples(size=64):
    samples = []
    for shift in (0, 8):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        batch_input_shape=(size, size),
                                        scale_factor=(1.0, 1.0), img_path='fake.png'))
        m = np.zeros((2, size, size), dtype=np.uint8)
        m[0, 4 + shift:30 + shift, 6:28] = 1
        m[1, 34:60, 30 + shift // 2:58] = 1
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[6., 4. + shift, 28., 30. + shift],
                                 [30. + shift // 2, 34., 58., 60.]]),
            labels=torch.tensor([0, 2]), masks=BitmapMasks(m, size, size))
        samples.append(s)
    return samples


# ------------------------------------------------------------- bad input
def _coco_with_bad_annotations(shapes_root, tmp_path):
    """The shapes train split, with image 0 stripped of annotations, and a
    zero-width box, a crowd region and a polygon outside the image added."""
    src = osp.join(str(shapes_root), 'coco', 'annotations', 'instances_train.json')
    coco = json.load(open(src))
    first = coco['images'][0]['id']
    second = coco['images'][1]['id']
    anns = [a for a in coco['annotations'] if a['image_id'] != first]
    next_id = max(a['id'] for a in anns) + 1
    anns += [
        dict(id=next_id, image_id=second, category_id=1, iscrowd=0, area=0.0,
             bbox=[10.0, 10.0, 0.0, 8.0],
             segmentation=[[10.0, 10.0, 10.0, 18.0, 10.0, 14.0]]),
        dict(id=next_id + 1, image_id=second, category_id=2, iscrowd=1, area=64.0,
             bbox=[30.0, 30.0, 8.0, 8.0],
             segmentation=[[30.0, 30.0, 38.0, 30.0, 38.0, 38.0, 30.0, 38.0]]),
        dict(id=next_id + 2, image_id=second, category_id=3, iscrowd=0, area=100.0,
             bbox=[200.0, 200.0, 10.0, 10.0],
             segmentation=[[200.0, 200.0, 210.0, 200.0, 210.0, 210.0, 200.0, 210.0]]),
    ]
    coco['annotations'] = anns
    out = tmp_path / 'bad.json'
    out.write_text(json.dumps(coco))
    return str(out), first, second


def test_bad_annotations_are_handled_like_stock_mmdet(shapes_root, tmp_path):
    """No annotations, a zero-width box, a crowd region, a polygon outside
    the image: the data set drops the degenerate ones, the crowd region goes
    to ignored_instances, and the loss stays finite, with a gradient."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    ann, first, second = _coco_with_bad_annotations(shapes_root, tmp_path)
    cfg = Config.fromfile(DEMO)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = osp.join(str(shapes_root), 'coco')
    ds_cfg.ann_file = ann
    ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t.type != 'RandomFlip']
    dataset = DATASETS.build(ds_cfg)
    index = {dataset.get_data_info(i)['img_id']: i for i in range(len(dataset))}
    empty, busy = dataset[index[first]], dataset[index[second]]
    assert len(empty['data_samples'].gt_instances) == 0
    src = json.load(open(ann))
    good = [a for a in src['annotations'] if a['image_id'] == second and a['area'] > 0
            and a['bbox'][0] < 64 and not a['iscrowd']]
    assert len(busy['data_samples'].gt_instances) == len(good)
    assert len(busy['data_samples'].ignored_instances) == 1  # the crowd region

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    for samples in ([empty], [empty, busy]):
        data = model.data_preprocessor(pseudo_collate(samples), training=True)
        losses = model(**data, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
        total.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        model.zero_grad()


def test_label_out_of_range_is_refused():
    head = build_head(num_classes=3, num_queries=3)
    gt, _, _, _ = _two_objects()
    gt.labels = torch.tensor([0, 7])
    s = DetDataSample(gt_instances=gt, metainfo=meta(pad=(64, 64)))
    with pytest.raises(ValueError, match='label 7 .*num_classes=3'):
        head.loss(fake_backbone_outputs(batch=1), [s])


# ---------------------------------------------------------------- configs
def _fake_coco_batch(model, size=128, n=2, with_mask=True):
    """Two COCO-shaped images (3 objects each) through the model's
    data preprocessor, as the train pipeline would pack them."""
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(n):
        boxes = np.array([[8, 8, 60, 50], [70, 20, 120, 100], [30, 60, 90, 120]], np.float32)
        masks = np.zeros((3, size, size), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
            masks[i, y1:y2, x1:x2] = 1
        gt = InstanceData(bboxes=torch.from_numpy(boxes), labels=torch.tensor([0, 5, 79]))
        if with_mask:
            gt.masks = BitmapMasks(masks, size, size)
        s = DetDataSample(gt_instances=gt, metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
            img_path='fake.jpg'))
        samples.append(s)
    inputs = [torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8))
              for _ in range(n)]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   training=True)


@pytest.mark.parametrize('path,arch,with_mask', [
    (TINY, 'tiny', True), (SMALL, 'small', True),
    (TINY_DET, 'tiny', False), (SMALL_DET, 'small', False)])
def test_coco_configs_follow_the_paper_and_train_an_iteration(path, arch, with_mask):
    cfg = Config.fromfile(path)
    head = cfg.model.bbox_head
    # §4.1.2 / §4.1.4
    assert cfg.model.backbone.arch == arch and cfg.model.backbone.out_centers
    decoder = head.transformer_decoder
    assert head.num_queries == 100 and decoder.num_layers == 6
    assert decoder.layer_cfg.clustering_cfg.num_iters == 3
    assert head.center_init == 'encoder' and head.with_mask == with_mask
    assert head.loss_cls.use_sigmoid and head.loss_bbox.loss_weight == 5.0
    assert head.loss_iou.type == 'GIoULoss' and head.loss_iou.loss_weight == 2.0
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.train_cfg.max_iters == 368750  # 50 epochs of train2017 at batch 16
    pipe = cfg.train_dataloader.dataset.pipeline
    jitter = [t for t in pipe if t.type == 'RandomResize'][0]
    crop = [t for t in pipe if t.type == 'RandomCrop'][0]
    assert jitter.ratio_range == (0.1, 2.0) and tuple(crop.crop_size) == (1024, 1024)
    test_resize = [t for t in cfg.val_dataloader.dataset.pipeline
                   if t.type in ('Resize', 'SafeResize')][0]
    assert tuple(test_resize.scale) == (1333, 800)
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.val_evaluator.metric == (['bbox', 'segm'] if with_mask else ['bbox'])
    load = [t for t in pipe if t.type == 'LoadAnnotations'][0]
    assert load.with_mask == with_mask

    # one training iteration of the real model on a COCO-shaped batch (128 px
    # instead of the 1024 px pad, to stay quick on a CPU)
    cfg.model.data_preprocessor.batch_augments = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = _fake_coco_batch(model, with_mask=with_mask)
    losses = model(**data, mode='loss')
    assert ('loss_mask' in losses) == with_mask and 'd5.loss_cls' in losses
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.stages[0].blocks[0].clustering.q.weight.grad is not None


@pytest.mark.parametrize('path,with_mask', [(TINY, True), (TINY_DET, False)])
def test_coco_config_pipelines_on_coco_format_data(path, with_mask, shapes_root):
    """The configs' LSJ train pipeline and 800-px test pipeline on the
    embedded COCO-format split (64x64 scenes standing in for COCO images)."""
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(path)
    coco = osp.join(str(shapes_root), 'coco')
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val')):
        ds = loader.dataset
        ds.data_root = coco
        ds.ann_file = f'annotations/instances_{split}.json'
        ds.data_prefix = dict(img=f'{split}/')
        ds.metainfo = dict(classes=('circle', 'cross', 'square', 'triangle'))
        data = DATASETS.build(ds)[0]
        inputs, sample = data['inputs'], data['data_samples']
        h, w = sample.img_shape
        if split == 'train':  # jittered x0.1-2.0 of 1024, cropped to at most 1024
            assert max(h, w) <= 1024 and inputs.shape[-2:] == (h, w)
            boxes = sample.gt_instances.bboxes.tensor
            assert (boxes[:, 2:] <= torch.tensor([w, h])).all() and (boxes >= 0).all()
            assert ('masks' in sample.gt_instances) == with_mask
        else:  # shorter side 800 (the 64x64 scenes become 800x800)
            assert (h, w) == (800, 800) and sample.scale_factor == (12.5, 12.5)


def test_mask_rcnn_swap_builds_and_trains_a_step():
    cfg = Config.fromfile(MASK_RCNN)
    assert cfg.model.type == 'MaskRCNN' and cfg.model.backbone.type == 'ClusterFormer'
    assert cfg.model.neck.type == 'FPN' and cfg.model.neck.in_channels == [96, 192, 384, 768]
    assert cfg.model.roi_head.type == 'StandardRoIHead'  # mmdet's stock heads
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = _fake_coco_batch(model, size=128)
    before = [p.detach().clone() for p in model.parameters()]
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    optim.step()
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    assert sum(not torch.equal(a, p) for a, p in zip(before, model.parameters())) > 0


# ---------------------------------------------------- runner / inference
# the config pointed at the shapes_root fixture, then extra --cfg-options
_demo_options = DEMO_BY_NAME['detection'].cli_options


@pytest.fixture(scope='module')
def demo_checkpoint(shapes_root, tmp_path_factory):
    """A few training iterations + COCO evaluation of the demo config through
    tools/train.py, once for the tests below."""
    work = str(tmp_path_factory.mktemp('det_demo'))
    _, out = run([python(), 'tools/train.py', DEMO, '--work-dir', work,
                  *_demo_options(shapes_root, [
                      'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                      'train_dataloader.batch_size=2', 'default_hooks.logger.interval=2',
                      'default_hooks.checkpoint.interval=4'])])
    return osp.join(work, 'iter_4.pth'), out, work


def test_train_and_coco_evaluation_through_the_runner(demo_checkpoint):
    ckpt, out, work = demo_checkpoint
    assert osp.isfile(ckpt)
    assert 'loss_cls' in out and 'd0.loss_dice' in out
    rows = [json.loads(line) for line in open(glob.glob(
        osp.join(work, '*', 'vis_data', 'scalars.json'))[0])]
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    assert val, 'no COCO evaluation logged'
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m',
                'bbox_mAP_l', 'segm_mAP', 'segm_mAP_50'):
        assert 'coco/' + key in val[-1]
    meta_ = torch.load(ckpt, map_location='cpu')['meta']
    assert tuple(meta_['dataset_meta']['classes']) == ('circle', 'cross', 'square', 'triangle')


def test_det_inferencer_on_a_checkpoint(demo_checkpoint, shapes_root, tmp_path):
    from mmdet.apis import DetInferencer
    ckpt, _, _ = demo_checkpoint
    img = sorted(glob.glob(osp.join(str(shapes_root), 'coco', 'val', '*.png')))[0]
    inferencer = DetInferencer(model=DEMO, weights=ckpt, device='cpu', show_progress=False)
    res = inferencer(img, out_dir=str(tmp_path / 'out'), no_save_pred=False)
    pred = res['predictions'][0]
    assert len(pred['bboxes']) == len(pred['scores']) == len(pred['labels']) == 80
    assert all(0 <= v <= 64 for box in pred['bboxes'] for v in box)
    assert len(pred['masks']) == 80  # RLE masks of the 64x64 image
    assert pred['masks'][0]['size'] == [64, 64]
    assert glob.glob(str(tmp_path / 'out' / 'vis' / '*.png'))


def test_detection_only_demo_trains(shapes_root, tmp_path):
    work = str(tmp_path / 'det')
    run([python(), 'tools/train.py', DEMO_DET, '--work-dir', work,
         *_demo_options(shapes_root, [
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'train_dataloader.batch_size=2', 'default_hooks.checkpoint.interval=2'])])
    rows = [json.loads(line) for line in open(glob.glob(
        osp.join(work, '*', 'vis_data', 'scalars.json'))[0])]
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    assert val and 'coco/segm_mAP' not in val[-1]


def test_instance_center_assignment_maps_for_explainability():
    """The head follows mmcf.visualization's protocol: one map per decoder
    layer over the level that layer clusters (8x8, 4x4 or 2x2 at 64 px)."""
    head = build_head().eval()
    assert head.num_stages == 6 and head.num_iters == 3
    with torch.no_grad():
        head(fake_backbone_outputs(batch=2))
    sizes = [tuple(head.assignment_maps(stage=i).shape) for i in range(6)]
    assert sizes == [(2, 2, 2), (2, 4, 4), (2, 8, 8)] * 2
    hard = head.assignment_maps(stage=-1)
    assert int(hard.max()) < 20 and hard.dtype == torch.int64
