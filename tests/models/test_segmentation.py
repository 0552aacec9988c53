"""Semantic segmentation (mmseg): the ClusterFormer decode head, its losses and
bad-input checks, the configs, the runner, whole/slide inference and
MMSegInferencer. CPU, tiny models, 64x64 images."""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData
from PIL import Image

import mmcf  # noqa: F401  (registers the modules)
from helpers import ROOT, fake_backbone_outputs, python, run
from demo_configs import DEMO_BY_NAME

from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

CFG_DIR = osp.join(ROOT, 'configs', 'segmentation')
DEMO = osp.join(CFG_DIR, 'clusterformer-test_1xb8-1k_shapes-64x64.py')
TINY = osp.join(CFG_DIR, 'clusterformer-tiny_8xb2-126k_ade20k-640x640.py')
SMALL = osp.join(CFG_DIR, 'clusterformer-small_8xb2-126k_ade20k-640x640.py')
UPERNET = osp.join(CFG_DIR, 'clusterformer-tiny_upernet_8xb2-160k_ade20k-512x512.py')

# One thread per process comes from tests/conftest.py and helpers.run.


def demo_head_cfg(**overrides):
    cfg = copy.deepcopy(Config.fromfile(DEMO).model.decode_head).to_dict()
    cfg.update(overrides)  # replace whole keys (ConfigDict.update would merge)
    return cfg


def build_head(**overrides):
    torch.manual_seed(0)
    head = MODELS.build(demo_head_cfg(**overrides))
    head.init_weights()
    return head


def sample(label, img_shape=None, padding=None):
    s = SegDataSample()
    label = torch.as_tensor(label, dtype=torch.int64)
    s.gt_sem_seg = PixelData(data=label[None])
    meta = dict(img_shape=tuple(img_shape or label.shape[-2:]))
    if padding is not None:
        meta['padding_size'] = padding
    s.set_metainfo(meta)
    return s


# ----------------------------------------------------------------- the head
def test_head_output_shapes_train_and_eval():
    head = build_head()
    inputs = fake_backbone_outputs()
    head.train()
    preds = head(inputs)
    # initial centers + 6 decoder layers, class scores at stride 4
    assert len(preds) == 7
    assert all(p.shape == (2, 7, 16, 16) for p in preds)
    head.eval()
    with torch.no_grad():
        final = head(inputs)
    assert len(final) == 1 and final[0].shape == (2, 7, 16, 16)
    with torch.no_grad():
        seg = head.predict(inputs, [dict(img_shape=(64, 64), pad_shape=(64, 64))], {})
    assert seg.shape == (2, 7, 64, 64)
    # no deep supervision: only the last layer, even in training
    head = build_head(deep_supervision=False, supervise_initial=False).train()
    assert len(head(inputs)) == 1
    decoder = head.trunk.transformer_decoder
    assert len(decoder.layers) == 6 and decoder.layers[0].clustering.num_iters == 3


def test_fpn_pixel_decoder_option():
    head = build_head(pixel_decoder=dict(
        type='mmdet.PixelDecoder', norm_cfg=dict(type='GN', num_groups=8),
        act_cfg=dict(type='ReLU')))
    assert not head.trunk.multi_scale_decoder
    preds = head.train()(fake_backbone_outputs())
    assert len(preds) == 7 and preds[-1].shape == (2, 7, 16, 16)
    losses = head.loss_by_feat(preds, [sample(torch.randint(0, 7, (64, 64))) for _ in range(2)])
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert head.trunk.pixel_decoder.mask_feature.weight.grad is not None


@pytest.mark.parametrize('center_init', ['encoder', 'free', 'feature'])
def test_decoder_uses_encoder_centers_only_when_asked(center_init):
    head = build_head(center_init=center_init).eval()
    a = fake_backbone_outputs(seed=1)
    b = a[:-1] + (torch.randn_like(a[-1]), )
    with torch.no_grad():
        pa, pb = head(a)[-1], head(b)[-1]
    if center_init == 'encoder':
        assert not torch.allclose(pa, pb, atol=1e-4)
        # and the centers get gradients through the head
        centers = a[-1].clone().requires_grad_(True)
        head.train()(a[:-1] + (centers, ))[-1].sum().backward()
        assert centers.grad is not None and centers.grad.abs().sum() > 0
    else:
        assert torch.equal(pa, pb)


def test_encoder_init_needs_the_centers():
    head = build_head().eval()
    with pytest.raises(ValueError, match='out_centers=True'):
        head(fake_backbone_outputs()[:-1])
    with pytest.raises(ValueError, match='num_encoder_centers=16'):
        head(fake_backbone_outputs(num_centers=100))


# ------------------------------------------------------------------- losses
def _direct_dice(logits, label, ignore=255, eps=1e-3):
    """mmseg 1.2.2 DiceLoss(use_sigmoid=False) per image on valid pixels."""
    terms = []
    for b in range(logits.shape[0]):
        valid = label[b] != ignore
        if not valid.any():
            continue
        p = logits[b][:, valid].softmax(dim=0)  # (K, n)
        t = F.one_hot(label[b][valid], logits.shape[1]).T.float()
        a = (p * t).sum()
        d = 2 * a / ((p * p).sum() + eps + (t * t).sum() + eps)
        terms.append(1 - d)
    return torch.stack(terms).mean()


def test_loss_matches_direct_computation():
    head = build_head()
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 7, 4, 4, generator=g)
    label = torch.randint(0, 7, (2, 8, 8), generator=g)
    label[0, :2] = 255  # a few ignored pixels
    label[1, :, :3] = 255
    samples = [sample(label[0]), sample(label[1])]
    aux = torch.randn(2, 7, 4, 4, generator=g)
    losses = head.loss_by_feat([aux, logits], samples)

    up = F.interpolate(logits, size=(8, 8), mode='bilinear', align_corners=False)
    up_aux = F.interpolate(aux, size=(8, 8), mode='bilinear', align_corners=False)
    ce = F.cross_entropy(up, label, ignore_index=255)  # mean over valid pixels
    assert torch.allclose(losses['loss_ce'], 5 * ce, atol=1e-5)
    assert torch.allclose(losses['loss_dice'], _direct_dice(up, label), atol=1e-5)
    ce_aux = F.cross_entropy(up_aux, label, ignore_index=255)
    assert torch.allclose(losses['d0.loss_ce'], 5 * ce_aux, atol=1e-5)
    assert torch.allclose(losses['d0.loss_dice'], _direct_dice(up_aux, label), atol=1e-5)
    assert set(losses) == {'loss_ce', 'loss_dice', 'd0.loss_ce', 'd0.loss_dice', 'acc_seg'}
    acc = (up.argmax(1) == label)[label != 255].float().mean() * 100
    assert torch.allclose(losses['acc_seg'], acc.reshape(1), atol=1e-4)


@pytest.mark.parametrize('use_sigmoid,naive_dice', [(False, False), (False, True),
                                                  (True, False), (True, True)])
def test_batched_dice_equals_mmseg_dice_per_image_on_valid_pixels(use_sigmoid, naive_dice):
    """The head's one-pass dice equals mmseg's DiceLoss run per image on the
    image's valid pixels only (the selection it replaces), in value and
    gradient, for every DiceLoss variant; an image without valid pixels is
    left out of the mean."""
    from mmseg.models.losses import DiceLoss
    head = build_head()
    loss_fn = DiceLoss(use_sigmoid=use_sigmoid, naive_dice=naive_dice, loss_weight=0.7,
                       eps=1e-3)
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 7, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    label = torch.randint(0, 7, (3, 6, 5), generator=g)
    label[0, :2] = 255
    label[1] = 255  # no valid pixel
    terms = []
    for b in (0, 2):
        valid = label[b] != 255
        pred = logits[b][:, valid].reshape(1, 7, -1, 1)
        terms.append(loss_fn(pred, label[b][valid].reshape(1, -1, 1), ignore_index=255))
    ref = torch.stack(terms).mean()
    out = head._dice_on_valid(loss_fn, logits, label)
    torch.testing.assert_close(out, ref)
    g_out, = torch.autograd.grad(out, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_out, g_ref)


def test_class_dice_is_one_dice_per_class_present():
    """dice_mode='class' (Mask2Former's per-mask dice): 1 - 2 sum p_c t_c /
    (sum p_c^2 + eps + sum t_c + eps) for every class present in an image,
    on its valid pixels, averaged over the (image, class) pairs."""
    from mmseg.models.losses import DiceLoss
    head = build_head(dice_mode='class')
    loss_fn = DiceLoss(use_sigmoid=False, loss_weight=2.0, eps=1e-3)
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 7, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    label = torch.randint(0, 3, (2, 5, 6), generator=g)  # classes 0..2 only
    label[0, 0] = 255
    label[1, 2:4, 2:4] = 6  # a small class in one image
    terms = []
    for b in range(2):
        valid = label[b] != 255
        p = logits[b][:, valid].softmax(dim=0)  # (C, n)
        for c in range(7):
            t = (label[b][valid] == c).double()
            if t.sum() == 0:
                continue
            d = 2 * (p[c] * t).sum() / ((p[c] ** 2).sum() + 1e-3 + t.sum() + 1e-3)
            terms.append(1 - d)
    assert len(terms) == 7  # classes 0-2 in both images, class 6 in one
    ref = 2.0 * torch.stack(terms).mean()
    out = head._dice_on_valid(loss_fn, logits, label)
    torch.testing.assert_close(out, ref)
    g_out, = torch.autograd.grad(out, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_out, g_ref)
    with pytest.raises(ValueError, match="dice_mode must be one of"):
        build_head(dice_mode='pixel')


def test_aux_losses_at_the_logits_size():
    """aux_resolution='logits': the non-final predictions are scored at their
    own size against nearest-resized labels, the final one at the labels'
    size as before."""
    head = build_head(aux_resolution='logits')
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 7, 4, 4, generator=g)
    aux = torch.randn(2, 7, 4, 4, generator=g)
    label = torch.randint(0, 7, (2, 8, 8), generator=g)
    label[0, :2] = 255
    losses = head.loss_by_feat([aux, logits], [sample(label[0]), sample(label[1])])
    small = label[:, ::2, ::2]  # nearest, 8 -> 4: every second pixel
    torch.testing.assert_close(losses['d0.loss_ce'],
                               5 * F.cross_entropy(aux, small, ignore_index=255))
    up = F.interpolate(logits, size=(8, 8), mode='bilinear', align_corners=False)
    torch.testing.assert_close(losses['loss_ce'], 5 * F.cross_entropy(up, label, ignore_index=255))
    with pytest.raises(ValueError, match='aux_resolution must be one of'):
        build_head(aux_resolution='points')


def test_dice_ignores_predictions_at_ignored_pixels():
    """Changing the logits at ignored pixels must not change any loss."""
    head = build_head()
    label = torch.randint(0, 7, (1, 8, 8))
    label[0, 4:] = 255
    logits = torch.randn(1, 7, 8, 8)
    other = logits.clone()
    other[..., 4:, :] = torch.randn(1, 7, 4, 8) * 10
    la = head.loss_by_feat(logits, [sample(label[0])])
    lb = head.loss_by_feat(other, [sample(label[0])])
    for k in ('loss_ce', 'loss_dice'):
        assert torch.allclose(la[k], lb[k], atol=1e-6), k


def test_all_ignore_label_gives_finite_zero_loss():
    head = build_head().train()
    preds = head(fake_backbone_outputs())
    label = torch.full((64, 64), 255)
    losses = head.loss_by_feat(preds, [sample(label), sample(label)])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert total.item() == 0.0
    total.backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_label_above_num_classes_is_refused():
    head = build_head()
    label = torch.zeros(8, 8, dtype=torch.long)
    label[3, 3] = 9
    with pytest.raises(ValueError, match=r'label value 9 .*num_classes=7'):
        head.loss_by_feat(torch.randn(1, 7, 4, 4), [sample(label)])
    label[3, 3] = 7  # == num_classes, also out of range
    with pytest.raises(ValueError, match=r'label value 7 .*num_classes=7'):
        head.loss_by_feat(torch.randn(1, 7, 4, 4), [sample(label)])


def test_label_size_differs_from_image_is_refused():
    head = build_head()
    with pytest.raises(ValueError, match=r'label map is 8x6 .* image is 8x8'):
        head.loss_by_feat(torch.randn(1, 7, 4, 4),
                          [sample(torch.zeros(8, 6), img_shape=(8, 8))])
    # padding done by SegDataPreProcessor (left, right, top, bottom) is fine
    losses = head.loss_by_feat(torch.randn(1, 7, 4, 4),
                               [sample(torch.zeros(8, 8), img_shape=(6, 7),
                                       padding=(0, 1, 0, 2))])
    assert torch.isfinite(losses['loss_ce'])


def test_check_seg_size_in_the_pipeline(tmp_path):
    from mmcv.transforms import Compose
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / 'img.png')
    Image.fromarray(np.zeros((64, 48), np.uint8)).save(tmp_path / 'seg.png')
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / 'ok.png')
    pipe = Compose([TRANSFORMS.build(dict(type=t)) for t in
                    ('LoadImageFromFile', 'LoadAnnotations', 'CheckSegSize')])
    base = dict(img_path=str(tmp_path / 'img.png'), reduce_zero_label=False, seg_fields=[])
    with pytest.raises(ValueError, match=r'seg\.png is 64x48 .*img\.png is 64x64'):
        pipe(dict(base, seg_map_path=str(tmp_path / 'seg.png')))
    out = pipe(dict(base, seg_map_path=str(tmp_path / 'ok.png')))
    assert out['gt_seg_map'].shape == (64, 64)
    # no label (inference): passes through
    check = TRANSFORMS.build(dict(type='CheckSegSize'))
    assert check(dict(img=np.zeros((4, 4, 3)), ori_shape=(4, 4))) is not None


# ------------------------------------------------------------------ configs
def _fake_batch(num_classes, size=64, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        label = torch.randint(0, num_classes, (size, size), generator=g)
        label[:4] = 255
        samples.append(sample(label))
    return dict(inputs=inputs, data_samples=samples)


def _train_step(cfg, num_classes):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # the segmentor builds its data preprocessor by name
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = [p.detach().clone() for p in model.parameters()]
    log = model.train_step(_fake_batch(num_classes), optim)
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    return model, log, changed


def test_upernet_swap_builds_and_trains_a_step():
    cfg = Config.fromfile(UPERNET)
    assert cfg.model.backbone.type == 'ClusterFormer' and cfg.model.backbone.arch == 'tiny'
    assert cfg.model.decode_head.type == 'UPerHead'  # mmseg's stock head, unchanged
    assert cfg.model.decode_head.in_channels == [96, 192, 384, 768]
    cfg.model.data_preprocessor.size = (64, 64)  # keep the CPU step small
    model, log, changed = _train_step(cfg, 150)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(log)
    assert all(np.isfinite(float(v)) for v in log.values())
    assert changed > 0


def _shrink_ade_cfg(cfg, data_root, work_dir):
    """ADE20K config on a fake 2-image ADE tree: arch 'test', 64x64 crops; the
    head keeps its real settings (width 256, 150 classes, 6 layers, T=3)."""
    cfg.model.backbone.arch = 'test'
    head = cfg.model.decode_head
    head.in_channels = [32, 64, 128, 256]
    head.encoder_channels = 256  # K_enc stays 100 (the config sets num_centers=100)
    assert cfg.model.backbone.num_centers == head.num_encoder_centers == 100
    cfg.model.data_preprocessor.size = (64, 64)
    for t in cfg.train_dataloader.dataset.pipeline:
        if t.type == 'RandomResize':
            t.scale = (256, 64)
        if t.type == 'RandomCrop':
            t.crop_size = (64, 64)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        for t in loader.dataset.pipeline:
            if t.type == 'Resize':
                t.scale = (256, 64)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data_root)
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.name = f'vis_{abs(hash(str(work_dir)))}'  # one visualizer per run
    cfg.work_dir = str(work_dir)
    return cfg


def _fake_ade(root):
    """ADE20K layout, labels 0..150 (0 = "other", ignored by reduce_zero_label)."""
    for split, n in (('training', 2), ('validation', 1)):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(n):
            rng = np.random.default_rng(i)
            img = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
            ann = rng.integers(0, 151, (96, 128), dtype=np.uint8)
            Image.fromarray(img).save(root / 'images' / split / f'ADE_{split}_{i:08d}.jpg')
            Image.fromarray(ann).save(root / 'annotations' / split / f'ADE_{split}_{i:08d}.png')
    return root


@pytest.mark.parametrize('path,arch', [(TINY, 'tiny'), (SMALL, 'small')])
def test_ade20k_config_trains_one_iteration(path, arch, tmp_path):
    from mmengine.runner import Runner
    cfg = Config.fromfile(path)
    # the paper's settings (§4.1.3)
    assert cfg.model.backbone.arch == arch and cfg.model.backbone.out_centers
    head = cfg.model.decode_head
    assert head.type == 'ClusterFormerHead' and head.num_classes == 150
    decoder = head.transformer_decoder
    assert decoder.num_layers == 6 and decoder.layer_cfg.clustering_cfg.num_iters == 3
    assert head.center_init == 'encoder'
    assert [(l.type, l.loss_weight) for l in head.loss_decode] == [
        ('CrossEntropyLoss', 5.0), ('DiceLoss', 1.0)]
    assert cfg.crop_size == (640, 640) and cfg.model.data_preprocessor.size == (640, 640)
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomResize'][0]
    assert resize.ratio_range == (0.5, 2.0)
    assert [t for t in cfg.test_pipeline if t.type == 'Resize'][0].scale == (2560, 640)
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.optim_wrapper.optimizer.lr == 1e-5
    assert cfg.train_cfg.max_iters == 126313 and cfg.val_evaluator.iou_metrics == ['mIoU']

    # the real model (tiny/small backbone, 768-wide x 100 encoder centers)
    # fits the head: a forward on one 64x64 image
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))
        assert feats[-1].shape == (1, 100, 768)
        assert model.decode_head(feats)[-1].shape == (1, 150, 16, 16)

    cfg = _shrink_ade_cfg(cfg, _fake_ade(tmp_path / 'ade'), tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(osp.join(str(tmp_path / 'work'), 'iter_1.pth'))
    scalars = glob.glob(osp.join(str(tmp_path / 'work'), '*', 'vis_data', 'scalars.json'))
    text = open(scalars[0]).read()
    assert 'decode.loss_ce' in text and 'decode.d6.loss_dice' not in text
    assert 'decode.d5.loss_dice' in text and 'mIoU' in text


# ------------------------------------------------------- runner / inference
# the config pointed at the shapes_root fixture, then extra --cfg-options
_demo_options = DEMO_BY_NAME['segmentation'].cli_options


def _val_images(root):
    return sorted(glob.glob(osp.join(str(root), 'semantic', 'img_dir', 'val', '*.png')))


@pytest.fixture(scope='module')
def demo_checkpoint(shapes_root, tmp_path_factory):
    """A few training iterations + validation of the demo config through
    tools/train.py, once for the tests below."""
    work = str(tmp_path_factory.mktemp('seg_demo'))
    _, out = run([python(), 'tools/train.py', DEMO, '--work-dir', work,
                  *_demo_options(shapes_root, [
                      'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
                      'train_dataloader.batch_size=4', 'default_hooks.logger.interval=2',
                      'default_hooks.checkpoint.interval=6'])])
    ckpt = osp.join(work, 'iter_6.pth')
    return ckpt, out


def test_train_and_validate_through_the_runner(demo_checkpoint):
    ckpt, out = demo_checkpoint
    assert osp.isfile(ckpt)
    assert 'mIoU' in out and 'decode.loss_ce' in out and 'decode.d0.loss_ce' in out
    meta = torch.load(ckpt, map_location='cpu')['meta']
    assert meta['dataset_meta']['classes'][:2] == ('circle', 'cross')


def test_whole_and_slide_inference(demo_checkpoint, shapes_root, tmp_path):
    from mmengine.config import ConfigDict
    from mmseg.apis import inference_model, init_model
    ckpt, _ = demo_checkpoint
    model = init_model(DEMO, ckpt, device='cpu')
    img = _val_images(shapes_root)[0]
    odd = str(tmp_path / 'odd.png')
    Image.open(img).resize((70, 50)).save(odd)  # 50x70, padded to 64x96 at test
    calls = []
    encode_decode = model.encode_decode
    model.encode_decode = lambda x, metas: calls.append(tuple(x.shape[-2:])) or \
        encode_decode(x, metas)
    # whole: one pass over the padded image; slide: 32x32 crops, stride 16
    for mode, n_crops in (('whole', (1, 1)), ('slide', (9, 15))):
        model.test_cfg = ConfigDict(mode=mode, crop_size=(32, 32), stride=(16, 16))
        for path, hw, n in ((img, (64, 64), n_crops[0]), (odd, (50, 70), n_crops[1])):
            calls.clear()
            res = inference_model(model, path)
            assert len(calls) == n, (mode, calls)
            if mode == 'slide':
                assert set(calls) == {(32, 32)}
            assert res.pred_sem_seg.data.shape == (1, *hw)
            assert res.seg_logits.data.shape == (7, *hw)
            assert torch.isfinite(res.seg_logits.data).all()
            assert int(res.pred_sem_seg.data.max()) < 7


def test_mmseg_inferencer_on_a_checkpoint(demo_checkpoint, shapes_root, tmp_path):
    from mmseg.apis import MMSegInferencer
    ckpt, _ = demo_checkpoint
    inferencer = MMSegInferencer(model=DEMO, weights=ckpt, device='cpu')
    img = _val_images(shapes_root)[1]
    out_dir = str(tmp_path / 'out')
    result = inferencer([img], out_dir=out_dir)
    pred = result['predictions']
    assert isinstance(pred, np.ndarray) and pred.shape == (64, 64) and pred.max() < 7
    # the visualisation (with the checkpoint's palette) and the label map
    assert osp.isfile(osp.join(out_dir, 'vis', osp.basename(img)))
    saved = np.array(Image.open(glob.glob(osp.join(out_dir, 'pred', '*.png'))[0]))
    assert (saved == pred).all()
    # the same prediction as init_model + inference_model
    from mmseg.apis import inference_model, init_model
    model = init_model(DEMO, ckpt, device='cpu')
    ref = inference_model(model, img).pred_sem_seg.data[0].numpy()
    assert (pred == ref).mean() > 0.99
