"""Tests for tools/dataset/make_shapes.py (the synthetic "shapes" data set)."""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = (Path(__file__).resolve().parents[2] / 'tools' / 'dataset' /
          'make_shapes.py')

SMALL = dict(size=64, num_train=6, num_val=3, cls_per_class_train=3,
             cls_per_class_val=2)


def _load_module():
    spec = importlib.util.spec_from_file_location('mmcf_make_shapes', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ms = _load_module()


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes') / 'shapes'
    out = ms.make_shapes(root, seed=0, **SMALL)
    assert out == root
    return root


def _hashes(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def _load_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _read_png(path):
    return np.array(Image.open(path))


def _rgb2id(rgb):
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _decode_segmentation(seg, h, w):
    """A compressed COCO RLE (what the generator writes) as a bool mask."""
    from pycocotools import mask as mask_util
    assert isinstance(seg, dict) and isinstance(seg['counts'], str)
    assert list(seg['size']) == [h, w]
    return mask_util.decode(dict(seg, counts=seg['counts'].encode('ascii'))).astype(bool)


def _bbox_of(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1,
            ys.max() - ys.min() + 1]


# --------------------------------------------------------------------------
def test_constants():
    assert ms.THING_CLASSES == ('circle', 'cross', 'square', 'triangle')
    assert ms.STUFF_CLASSES == ('sky', 'grass', 'bricks')
    assert ms.SEMANTIC_CLASSES == ms.THING_CLASSES + ms.STUFF_CLASSES
    assert tuple(sorted(ms.CLASSIFICATION_CLASSES)) == \
        tuple(ms.CLASSIFICATION_CLASSES)
    assert len(ms.SEMANTIC_PALETTE) == len(ms.SEMANTIC_CLASSES)


def test_determinism(tmp_path, dataset):
    a = ms.make_shapes(tmp_path / 'a', seed=0, **SMALL)
    b = ms.make_shapes(tmp_path / 'nested' / 'b', seed=0, **SMALL)
    c = ms.make_shapes(tmp_path / 'c', seed=1, **SMALL)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) > 50
    assert ha == hb
    assert ha == _hashes(dataset)
    assert set(ha) == set(hc)
    differing = [k for k in ha if ha[k] != hc[k]]
    assert any(k.startswith('coco/train/') for k in differing)
    assert any(k.startswith('classification/train/') for k in differing)
    # no temporary folders left next to the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'c', 'nested']


def test_idempotent_and_conflicts(tmp_path):
    out = tmp_path / 'shapes'
    ms.make_shapes(out, seed=3, **SMALL)
    files = sorted(p for p in out.rglob('*') if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    dir_inode = out.stat().st_ino
    os.utime(files[0], ns=(1, 1))  # a clear marker: a rewrite would reset it
    before[files[0]] = 1

    assert ms.make_shapes(out, seed=3, **SMALL) == out
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert out.stat().st_ino == dir_inode

    with pytest.raises(FileExistsError, match='shapes'):
        ms.make_shapes(out, seed=4, **SMALL)
    with pytest.raises(FileExistsError, match='force'):
        ms.make_shapes(out, seed=3, **dict(SMALL, num_val=1))
    # the failed calls changed nothing
    assert {p: p.stat().st_mtime_ns for p in files} == before

    ms.make_shapes(out, seed=4, force=True, **SMALL)
    stamp = _load_json(out / '.complete')
    assert stamp['seed'] == 4
    assert files[0].stat().st_mtime_ns != 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['shapes']

    # a non-empty folder that is not a data set is not overwritten
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'keep.txt').write_text('x')
    with pytest.raises(FileExistsError, match='other'):
        ms.make_shapes(other, **SMALL)
    assert (other / 'keep.txt').read_text() == 'x'
    # an empty folder is simply filled
    empty = tmp_path / 'empty'
    empty.mkdir()
    ms.make_shapes(empty, **SMALL)
    assert (empty / '.complete').is_file()


def test_older_format_is_regenerated(tmp_path):
    """A data set this generator made with the same arguments but an older
    format (1: polygons) is replaced; one with other arguments is not."""
    out = tmp_path / 'shapes'
    ms.make_shapes(out, seed=3, **SMALL)
    stamp = _load_json(out / '.complete')
    assert stamp['format_version'] == ms.FORMAT_VERSION == 2
    (out / '.complete').write_text(json.dumps(dict(stamp, format_version=1)))
    marker = out / 'coco' / 'annotations' / 'instances_val.json'
    marker.write_text('{}')
    ms.make_shapes(out, seed=3, **SMALL)
    assert _load_json(out / '.complete')['format_version'] == 2
    ann = _load_json(marker)
    assert ann['annotations'] and isinstance(ann['annotations'][0]['segmentation']['counts'], str)
    (out / '.complete').write_text(json.dumps(dict(stamp, format_version=1, seed=9)))
    with pytest.raises(FileExistsError, match='other arguments'):
        ms.make_shapes(out, seed=3, **SMALL)


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ms, '_write_scenes', boom)
    with pytest.raises(KeyboardInterrupt):
        ms.make_shapes(tmp_path / 'shapes', **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('kwargs, name', [
    (dict(size=16), 'size'),
    (dict(size=31), 'size'),
    (dict(size=64.0), 'size'),
    (dict(seed=-1), 'seed'),
    (dict(num_train=-1), 'num.train'),
    (dict(num_val=-2), 'num.val'),
    (dict(cls_per_class_train=-1), 'cls.per.class.train'),
    (dict(cls_per_class_val=-1), 'cls.per.class.val'),
])
def test_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        ms.make_shapes(tmp_path / 'x', **kwargs)
    assert not (tmp_path / 'x').exists()


def test_out_is_a_file(tmp_path):
    f = tmp_path / 'file.txt'
    f.write_text('not a folder')
    with pytest.raises(ValueError, match='out'):
        ms.make_shapes(f, **SMALL)
    assert f.read_text() == 'not a folder'


def test_layout_and_counts(dataset):
    n = {'train': SMALL['num_train'], 'val': SMALL['num_val']}
    per_class = {
        'train': SMALL['cls_per_class_train'],
        'val': SMALL['cls_per_class_val']
    }
    for split in ('train', 'val'):
        names = [f'{i:04d}.png' for i in range(1, n[split] + 1)]
        for folder in (f'coco/{split}', f'coco/panoptic_{split}',
                       f'semantic/img_dir/{split}',
                       f'semantic/ann_dir/{split}'):
            assert sorted(p.name for p in (dataset / folder).iterdir()) == \
                names, folder
        for name in names:
            assert (dataset / f'coco/{split}/{name}').read_bytes() == \
                (dataset / f'semantic/img_dir/{split}/{name}').read_bytes()
            img = Image.open(dataset / f'coco/{split}/{name}')
            assert img.mode == 'RGB' and img.size == (64, 64)
        inst = _load_json(dataset / f'coco/annotations/instances_{split}.json')
        pan = _load_json(dataset / f'coco/annotations/panoptic_{split}.json')
        for d in (inst, pan):
            assert {'info', 'licenses', 'images', 'annotations',
                    'categories'} <= set(d)
            assert [im['id'] for im in d['images']] == \
                list(range(1, n[split] + 1))
            assert [im['file_name'] for im in d['images']] == names
            assert all(im['height'] == 64 and im['width'] == 64
                       for im in d['images'])
        assert len(pan['annotations']) == n[split]
        assert [a['id'] for a in inst['annotations']] == \
            list(range(1, len(inst['annotations']) + 1))
        per_image = np.bincount([a['image_id'] for a in inst['annotations']],
                                minlength=n[split] + 1)[1:]
        assert per_image.min() >= 1 and per_image.max() <= 4
        for cls in ms.CLASSIFICATION_CLASSES:
            files = sorted((dataset / 'classification' / split /
                            cls).iterdir())
            assert len(files) == per_class[split]

    assert [c['name'] for c in inst['categories']] == list(ms.THING_CLASSES)
    assert [c['id'] for c in inst['categories']] == [1, 2, 3, 4]
    assert all(c['supercategory'] == 'shape' for c in inst['categories'])
    cats = pan['categories']
    assert [c['name'] for c in cats] == list(ms.SEMANTIC_CLASSES)
    assert [c['id'] for c in cats] == list(range(1, 8))
    assert [c['isthing'] for c in cats] == [1, 1, 1, 1, 0, 0, 0]
    assert all(len(c['color']) == 3 and c['supercategory'] for c in cats)

    meta = _load_json(dataset / 'meta.json')
    assert meta['classification_classes'] == list(ms.CLASSIFICATION_CLASSES)
    assert meta['thing_classes'] == list(ms.THING_CLASSES)
    assert meta['stuff_classes'] == list(ms.STUFF_CLASSES)
    assert meta['semantic_classes'] == list(ms.SEMANTIC_CLASSES)
    assert len(meta['palette']) == 7
    assert meta['splits']['train']['scenes'] == SMALL['num_train']
    assert meta['splits']['val']['classification_images'] == \
        4 * SMALL['cls_per_class_val']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_instances_panoptic_semantic_agree(dataset, split):
    coco = dataset / 'coco'
    inst = _load_json(coco / 'annotations' / f'instances_{split}.json')
    pan = _load_json(coco / 'annotations' / f'panoptic_{split}.json')
    isthing = {c['id']: c['isthing'] for c in pan['categories']}
    # COCO category id -> semantic label (things 0..3, stuff 4..6)
    cat_to_sem = {c['id']: i for i, c in enumerate(pan['categories'])}
    anns_by_image = {}
    for a in inst['annotations']:
        anns_by_image.setdefault(a['image_id'], []).append(a)

    stuff_segments_seen = 0
    for image, pan_ann in zip(pan['images'], pan['annotations']):
        h, w = image['height'], image['width']
        assert pan_ann['image_id'] == image['id']
        assert pan_ann['file_name'] == image['file_name']
        pan_png = Image.open(coco / f'panoptic_{split}' /
                             pan_ann['file_name'])
        assert pan_png.mode == 'RGB'
        ids = _rgb2id(np.array(pan_png))
        segs = pan_ann['segments_info']
        seg_ids = [s['id'] for s in segs]
        assert len(set(seg_ids)) == len(seg_ids) and 0 not in seg_ids
        # every pixel belongs to exactly one listed segment
        assert set(np.unique(ids).tolist()) == set(seg_ids)
        for s in segs:
            mask = ids == s['id']
            assert s['area'] == int(mask.sum()) > 0
            assert s['bbox'] == _bbox_of(mask)
            assert s['iscrowd'] == 0
        stuff_cats = [s['category_id'] for s in segs
                      if not isthing[s['category_id']]]
        assert len(stuff_cats) == len(set(stuff_cats))  # one per stuff class
        stuff_segments_seen += len(stuff_cats)

        # semantic map agrees with the panoptic map pixel by pixel
        sem_img = Image.open(dataset / 'semantic' / 'ann_dir' / split /
                             image['file_name'])
        assert sem_img.mode == 'L'
        sem = np.array(sem_img)
        assert sem.shape == (h, w) and sem.max() <= 6
        expected = np.full((h, w), 255, dtype=np.int64)
        for s in segs:
            expected[ids == s['id']] = cat_to_sem[s['category_id']]
        assert np.array_equal(sem, expected)

        # instance annotations == thing segments (same masks, boxes, areas)
        thing_segs = [s for s in segs if isthing[s['category_id']]]
        anns = anns_by_image.get(image['id'], [])
        assert len(anns) == len(thing_segs)
        unmatched = {s['id']: s for s in thing_segs}
        for a in anns:
            assert a['iscrowd'] == 0
            mask = _decode_segmentation(a['segmentation'], h, w)
            assert a['area'] == int(mask.sum())
            x, y, bw, bh = a['bbox']
            assert bw >= 1 and bh >= 1
            assert [x, y, bw, bh] == _bbox_of(mask)
            if isinstance(a['segmentation'], list):
                xs = [v for p in a['segmentation'] for v in p[0::2]]
                ys = [v for p in a['segmentation'] for v in p[1::2]]
                assert [min(xs), min(ys), max(xs) - min(xs),
                        max(ys) - min(ys)] == [x, y, bw, bh]
            match = [
                sid for sid, s in unmatched.items()
                if s['category_id'] == a['category_id']
                and np.array_equal(ids == sid, mask)
            ]
            assert len(match) == 1, (image['file_name'], a['id'])
            assert unmatched.pop(match[0])['area'] == a['area']
            assert a['area'] >= ms._min_visible_area(w)
    assert stuff_segments_seen >= len(pan['images'])


def test_several_stuff_segments_overall(dataset):
    pan = _load_json(dataset / 'coco/annotations/panoptic_train.json')
    isthing = {c['id']: c['isthing'] for c in pan['categories']}
    n_stuff = [
        sum(not isthing[s['category_id']] for s in a['segments_info'])
        for a in pan['annotations']
    ]
    assert min(n_stuff) >= 1 and max(n_stuff) <= 2


def test_classification_meta(dataset):
    cls_root = dataset / 'classification'
    classes = (cls_root / 'meta' / 'classes.txt').read_text().split()
    assert classes == list(ms.CLASSIFICATION_CLASSES)
    for split, per_class in (('train', SMALL['cls_per_class_train']),
                             ('val', SMALL['cls_per_class_val'])):
        # mmpretrain's folder mode: classes = sorted sub-folder names
        folders = sorted(p.name for p in (cls_root / split).iterdir())
        assert folders == classes
        lines = (cls_root / 'meta' / f'{split}.txt').read_text().splitlines()
        assert len(lines) == 4 * per_class
        listed = set()
        for line in lines:
            rel, label = line.rsplit(' ', 1)
            path = cls_root / split / rel
            assert path.is_file(), line
            assert rel.split('/')[0] == classes[int(label)]
            img = Image.open(path)
            assert img.mode == 'RGB' and img.size == (64, 64)
            listed.add(path)
        assert listed == set((cls_root / split).rglob('*.png'))


def test_classification_image_has_one_dominant_shape(tmp_path):
    grid = ms._Grid(64)
    for label in range(4):
        img = ms._render_classification(label, grid,
                                        np.random.default_rng(label))
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        # the shape is flat-coloured; the most frequent colour is the shape
        colours, counts = np.unique(img.reshape(-1, 3), axis=0,
                                    return_counts=True)
        assert counts.max() >= 0.1 * 64 * 64


def test_mask_to_segmentation_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        if not mask.any():
            continue
        seg = ms.mask_to_segmentation(mask)
        assert np.array_equal(_decode_segmentation(seg, h, w), mask)
    # holes and several regions are exact too
    ring = np.ones((5, 5), dtype=bool)
    ring[2, 2] = False
    two = np.zeros((6, 8), dtype=bool)
    two[1:3, 1:3] = True
    two[3:5, 5:8] = True
    for mask in (ring, two):
        seg = ms.mask_to_segmentation(mask)
        assert np.array_equal(_decode_segmentation(seg, *mask.shape), mask)
    json.dumps(seg)  # JSON-serialisable as it is


def test_pycocotools_reads_instances(dataset):
    pytest.importorskip('pycocotools')
    from pycocotools.coco import COCO
    for split in ('train', 'val'):
        coco = COCO(str(dataset / 'coco' / 'annotations' /
                        f'instances_{split}.json'))
        assert sorted(coco.getCatIds()) == [1, 2, 3, 4]
        pan = _load_json(dataset / 'coco' / 'annotations' /
                         f'panoptic_{split}.json')
        for ann in coco.dataset['annotations']:
            m = coco.annToMask(ann).astype(bool)
            assert abs(int(m.sum()) - ann['area']) <= 2
            img = coco.imgs[ann['image_id']]
            assert m.shape == (img['height'], img['width'])
        assert len(coco.imgs) == len(pan['images'])


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    args = [
        sys.executable,
        str(SCRIPT), '--out',
        str(out), '--size', '48', '--num-train', '2', '--num-val', '1',
        '--cls-per-class-train', '1', '--cls-per-class-val', '1'
    ]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and 'train' in lines[0] and 'val' in lines[0]
    assert Image.open(out / 'coco' / 'train' / '0001.png').size == (48, 48)
    assert _load_json(out / 'meta.json')['size'] == 48
    # same arguments again: fine; other arguments: clear error, exit code 2
    assert subprocess.run(args, capture_output=True,
                          timeout=120).returncode == 0
    res = subprocess.run(args + ['--seed', '5'], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and str(out) in res.stderr
    res = subprocess.run(args[:4] + ['--size', '8'], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and '--size' in res.stderr
