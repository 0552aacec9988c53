#!/usr/bin/env python
"""Generate the synthetic "shapes" data set used by mmcf's tests and demos.

The generator is deterministic: the same arguments always give byte-identical
files. It only needs numpy and Pillow.

Content
-------
* stuff (background textures): ``sky``, ``grass``, ``bricks``; every scene
  background is one region or two regions split by a (slightly tilted)
  horizontal or vertical line.
* things (filled shapes): ``circle``, ``cross``, ``square``, ``triangle``,
  1 to 4 per scene, each in its own saturated colour chosen to contrast with
  what lies under it. Later shapes occlude earlier ones; all masks describe
  the visible part only.

Layout under ``--out`` (default ``data/shapes``)::

    meta.json                                 class lists, palettes, counts
    .complete                                 stamp with the arguments used
    classification/meta/classes.txt           circle, cross, square, triangle
    classification/meta/{train,val}.txt       "<class>/<NNNN>.png <label>"
    classification/{train,val}/<class>/<NNNN>.png
    coco/annotations/instances_{train,val}.json   COCO instances
    coco/annotations/panoptic_{train,val}.json    COCO panoptic
    coco/{train,val}/<NNNN>.png                   scene images
    coco/panoptic_{train,val}/<NNNN>.png          id = R + 256 G + 256^2 B
    semantic/img_dir/{train,val}/<NNNN>.png       scene images (same bytes)
    semantic/ann_dir/{train,val}/<NNNN>.png       "L" label maps, values 0..6

Class orders
------------
* classification / COCO things (category ids 1..4): circle, cross, square,
  triangle (sorted names, so that mmpretrain's folder mode agrees with
  ``meta/classes.txt``).
* COCO stuff (category ids 5..7): sky, grass, bricks.
* semantic labels: 0 circle, 1 cross, 2 square, 3 triangle, 4 sky, 5 grass,
  6 bricks (no 255 pixels).

Usage::

    python tools/dataset/make_shapes.py [--out DIR] [--size 64] [--seed 0]
        [--num-train 160] [--num-val 40] [--cls-per-class-train 400]
        [--cls-per-class-val 50] [--force]

or, from Python, ``make_shapes(out, ...)`` which returns the output folder.
"""
from __future__ import annotations

import argparse
import colorsys
import contextlib
import io
import json
import math
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

__all__ = [
    'THING_CLASSES', 'STUFF_CLASSES', 'SEMANTIC_CLASSES',
    'CLASSIFICATION_CLASSES', 'THING_PALETTE', 'STUFF_PALETTE',
    'SEMANTIC_PALETTE', 'make_shapes', 'main'
]

THING_CLASSES = ('circle', 'cross', 'square', 'triangle')
STUFF_CLASSES = ('sky', 'grass', 'bricks')
SEMANTIC_CLASSES = THING_CLASSES + STUFF_CLASSES
CLASSIFICATION_CLASSES = THING_CLASSES

# Display colours (for visualisation / config palettes only; the rendered
# shapes use random colours so that the class is given by the shape).
THING_PALETTE = ((220, 20, 60), (255, 200, 0), (148, 0, 211), (0, 200, 200))
STUFF_PALETTE = ((135, 206, 235), (34, 139, 34), (160, 82, 45))
SEMANTIC_PALETTE = THING_PALETTE + STUFF_PALETTE

#: Bump when the rendering changes, so that stale data sets are detected.
FORMAT_VERSION = 2  # 2: instance masks as compressed RLE (pycocotools)
MIN_SIZE = 32
SPLITS = ('train', 'val')
STAMP_NAME = '.complete'

# Keys that select independent random streams.
_TASK_SCENE = 0
_TASK_CLS = 1
_SPLIT_CODE = {'train': 0, 'val': 1}

_THING_ID_OFFSET = 1  # COCO category id of THING_CLASSES[0]
_STUFF_ID_OFFSET = _THING_ID_OFFSET + len(THING_CLASSES)  # id of 'sky'


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def _check_int(name: str, value, minimum: int) -> int:
    flag = '--' + name.replace('_', '-')
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{flag} ({name}) must be an integer, '
                         f'got {value!r}')
    if value < minimum:
        raise ValueError(f'{flag} ({name}) must be >= {minimum}, '
                         f'got {value}')
    return int(value)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
class _Grid:
    """Pixel-centre coordinates of a square image."""

    def __init__(self, size: int):
        self.size = size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        self.xs = xs + 0.5
        self.ys = ys + 0.5


def _stuff_texture(stuff: int, grid: _Grid,
                   rng: np.random.Generator) -> np.ndarray:
    """Float RGB texture (H, W, 3) of one stuff class."""
    size = grid.size
    name = STUFF_CLASSES[stuff]
    if name == 'sky':
        top = np.array([40., 90., 200.]) + rng.uniform(-15, 15, 3)
        bottom = np.array([165., 210., 250.]) + rng.uniform(-20, 5, 3)
        t = ((np.arange(size) + 0.5) / size)[:, None, None]
        img = top * (1 - t) + bottom * t
        img = np.broadcast_to(img, (size, size, 3))
        img = img + rng.normal(0, 3, (size, size, 3))
    elif name == 'grass':
        base = np.array([55., 140., 45.]) + rng.uniform(-15, 15, 3)
        lum = (16 * rng.normal(0, 1, (size, size)) +
               12 * rng.normal(0, 1, (1, size)))
        img = base + lum[..., None] * np.array([0.5, 1.0, 0.4])
    elif name == 'bricks':
        bh = max(3, int(round(size / 8)))  # brick height incl. mortar
        bw = 2 * bh
        mortar = max(1, int(round(size / 64)))
        oy = int(rng.integers(bh))
        ox = int(rng.integers(bw))
        yy = np.arange(size) + oy
        row = yy // bh
        xx = np.arange(size)[None, :] + ox + (row[:, None] % 2) * (bw // 2)
        col = xx // bw
        is_mortar = ((yy % bh)[:, None] < mortar) | (xx % bw < mortar)
        nrows, ncols = int(row.max()) + 1, int(col.max()) + 1
        base = np.array([150., 62., 42.])
        shade = rng.uniform(-25, 25, (nrows, ncols, 1)) * np.array(
            [1.0, 0.5, 0.4])
        tint = rng.uniform(-8, 8, (nrows, ncols, 3))
        bricks = (base + shade + tint)[row[:, None], col]
        mortar_colour = np.array([190., 182., 168.]) + rng.uniform(-10, 10, 3)
        img = np.where(is_mortar[..., None], mortar_colour, bricks)
        img = img + rng.normal(0, 5, (size, size, 3))
    else:  # pragma: no cover
        raise KeyError(name)
    return img


def _background(grid: _Grid, rng: np.random.Generator):
    """Return (stuff_map int64 (H, W) of STUFF_CLASSES indices, uint8 RGB)."""
    size = grid.size
    n_regions = int(rng.integers(1, 3))
    classes = rng.permutation(len(STUFF_CLASSES))[:n_regions]
    if n_regions == 1:
        stuff_map = np.full((size, size), classes[0], dtype=np.int64)
    else:
        vertical = bool(rng.random() < 0.5)
        pos = rng.uniform(0.3, 0.7) * size
        slope = rng.uniform(-0.3, 0.3)
        if vertical:
            side = grid.xs > pos + slope * (grid.ys - size / 2)
        else:
            side = grid.ys > pos + slope * (grid.xs - size / 2)
        stuff_map = np.where(side, classes[1], classes[0]).astype(np.int64)
    img = np.zeros((size, size, 3), dtype=np.float64)
    for c in classes:  # textures drawn in a fixed order -> deterministic
        tex = _stuff_texture(int(c), grid, rng)
        img = np.where((stuff_map == c)[..., None], tex, img)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return stuff_map, img


def _shape_mask(name: str, cx: float, cy: float, side: float, angle: float,
                grid: _Grid) -> np.ndarray:
    """Boolean mask of a filled shape; `side` is its nominal extent."""
    dx = grid.xs - cx
    dy = grid.ys - cy
    h = side / 2
    if name == 'circle':
        return dx * dx + dy * dy <= h * h
    c, s = math.cos(angle), math.sin(angle)
    u = c * dx + s * dy
    v = -s * dx + c * dy
    if name == 'square':
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if name == 'cross':
        t = side / 6  # arms are a third of the extent wide
        au, av = np.abs(u), np.abs(v)
        return ((au <= h) & (av <= t)) | ((au <= t) & (av <= h))
    if name == 'triangle':
        # apex (0, -h), base corners (+-h, h) in the rotated frame
        return (v <= h) & (2 * u - v <= h) & (-2 * u - v <= h)
    raise KeyError(name)  # pragma: no cover


def _pick_colour(rng: np.random.Generator, image: np.ndarray,
                 sources: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A saturated colour far from the mean colour of everything under
    `mask` (one mean per source region: stuff region or earlier shape)."""
    refs = [
        image[mask & (sources == src)].astype(np.float64).mean(axis=0)
        for src in np.unique(sources[mask])
    ]
    best, best_dist = None, -1.0
    for _ in range(48):
        colour = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.75, 1.0),
                                              rng.uniform(0.8, 1.0))) * 255
        dist = min(float(np.linalg.norm(colour - r)) for r in refs)
        if dist > best_dist:
            best, best_dist = colour, dist
        if dist >= 120:
            break
    return np.clip(np.rint(best), 0, 255).astype(np.uint8)


def _min_visible_area(size: int) -> int:
    """20 px at size 64, scaled with the image area (at least 4 px)."""
    return max(4, int(round(20 * (size / 64)**2)))


def _render_scene(grid: _Grid, rng: np.random.Generator):
    """Return (image uint8 (H, W, 3), stuff_map, inst_map, classes).

    ``inst_map`` holds, per pixel, the index into ``classes`` of the visible
    instance or -1 for background.
    """
    size = grid.size
    stuff_map, image = _background(grid, rng)
    inst_map = np.full((size, size), -1, dtype=np.int64)
    # source map for colour contrast: stuff class, or 100 + instance index
    sources = stuff_map.copy()
    scale = size / 64
    min_area = _min_visible_area(size)
    classes, full_areas = [], []
    for _ in range(int(rng.integers(1, 5))):
        accepted = None
        for _attempt in range(30):
            name = THING_CLASSES[int(rng.integers(len(THING_CLASSES)))]
            side = rng.uniform(12, 28) * scale
            angle = 0.0 if name == 'circle' else rng.uniform(-20, 20) * (
                math.pi / 180)
            margin = side / 2 * 1.4 + 1
            cx = rng.uniform(margin, size - margin)
            cy = rng.uniform(margin, size - margin)
            mask = _shape_mask(name, cx, cy, side, angle, grid)
            area = int(mask.sum())
            if area < min_area:
                continue
            new_map = np.where(mask, len(classes), inst_map)
            # partial overlap only: every earlier instance keeps a good part
            # of itself visible (and never less than `min_area` pixels), so
            # no instance ever has to be dropped afterwards.
            ok = all(
                int((new_map == k).sum()) >= max(min_area, 0.35 * full)
                for k, full in enumerate(full_areas))
            if ok:
                accepted = (name, mask, area, new_map)
                break
        if accepted is None:
            continue  # could not place a valid instance: drop it
        name, mask, area, new_map = accepted
        colour = _pick_colour(rng, image, sources, mask)
        image[mask] = colour
        sources[mask] = 100 + len(classes)
        inst_map = new_map
        classes.append(THING_CLASSES.index(name))
        full_areas.append(area)
    return image, stuff_map, inst_map, classes


def _render_classification(label: int, grid: _Grid,
                           rng: np.random.Generator) -> np.ndarray:
    size = grid.size
    stuff_map, image = _background(grid, rng)
    name = CLASSIFICATION_CLASSES[label]
    side = rng.uniform(0.4, 0.65) * size
    angle = 0.0 if name == 'circle' else rng.uniform(-20, 20) * (math.pi /
                                                                 180)
    margin = side / 2 * 1.4 + 1
    lo, hi = min(margin, size / 2), max(size - margin, size / 2)
    cx = float(np.clip(size / 2 + rng.uniform(-0.1, 0.1) * size, lo, hi))
    cy = float(np.clip(size / 2 + rng.uniform(-0.1, 0.1) * size, lo, hi))
    mask = _shape_mask(name, cx, cy, side, angle, grid)
    image[mask] = _pick_colour(rng, image, stuff_map, mask)
    return image


def mask_to_segmentation(mask: np.ndarray) -> dict:
    """COCO segmentation of a mask: compressed RLE (pycocotools), exact for
    any mask, holes and several regions included."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'counts': rle['counts'].decode('ascii'), 'size': [int(v) for v in rle['size']]}


def _bbox(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Pillow writes no time or text chunks unless asked to.
    Image.fromarray(np.ascontiguousarray(array)).save(
        buf, format='PNG', compress_level=6)
    return buf.getvalue()


def _dump_json(obj, path: Path, indent=None) -> None:
    text = json.dumps(obj, indent=indent, ensure_ascii=True)
    path.write_text(text + '\n', encoding='utf-8')


def _things_categories():
    return [{
        'id': _THING_ID_OFFSET + i,
        'name': name,
        'supercategory': 'shape'
    } for i, name in enumerate(THING_CLASSES)]


def _panoptic_categories():
    cats = []
    for i, name in enumerate(THING_CLASSES):
        cats.append({
            'id': _THING_ID_OFFSET + i,
            'name': name,
            'supercategory': 'shape',
            'isthing': 1,
            'color': list(THING_PALETTE[i])
        })
    for i, name in enumerate(STUFF_CLASSES):
        cats.append({
            'id': _STUFF_ID_OFFSET + i,
            'name': name,
            'supercategory': 'background',
            'isthing': 0,
            'color': list(STUFF_PALETTE[i])
        })
    return cats


def _coco_info(split: str):
    return {
        'description': f'mmcf synthetic shapes data set ({split})',
        'version': str(FORMAT_VERSION),
        'contributor': 'mmcf tools/dataset/make_shapes.py',
        'url': '',
        'year': 0,
        'date_created': ''
    }


def _digits(n: int) -> int:
    return max(4, len(str(n)))


def _write_scenes(root: Path, split: str, num: int, grid: _Grid,
                  seed: int) -> dict:
    size = grid.size
    coco = root / 'coco'
    dirs = {
        'img': coco / split,
        'pan': coco / f'panoptic_{split}',
        'sem_img': root / 'semantic' / 'img_dir' / split,
        'sem_ann': root / 'semantic' / 'ann_dir' / split,
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (coco / 'annotations').mkdir(parents=True, exist_ok=True)

    images, inst_anns, pan_anns = [], [], []
    n_segments = 0
    width = _digits(num)
    for idx in range(num):
        image_id = idx + 1
        file_name = f'{image_id:0{width}d}.png'
        rng = _rng(seed, _TASK_SCENE, _SPLIT_CODE[split], idx)
        image, stuff_map, inst_map, classes = _render_scene(grid, rng)

        semantic = (len(THING_CLASSES) + stuff_map).astype(np.uint8)
        pan_ids = np.zeros((size, size), dtype=np.int64)
        segments = []
        # things, in drawing order
        for k, label in enumerate(classes):
            mask = inst_map == k
            area = int(mask.sum())
            if area == 0:  # pragma: no cover (prevented while rendering)
                continue
            semantic[mask] = label
            bbox = _bbox(mask)
            inst_anns.append({
                'id': len(inst_anns) + 1,
                'image_id': image_id,
                'category_id': _THING_ID_OFFSET + label,
                'segmentation': mask_to_segmentation(mask),
                'area': area,
                'bbox': [float(v) for v in bbox],
                'iscrowd': 0
            })
            segments.append((mask, _THING_ID_OFFSET + label, bbox, area))
        # stuff, one segment per class present
        thing_pixels = inst_map >= 0
        for s in range(len(STUFF_CLASSES)):
            mask = (stuff_map == s) & ~thing_pixels
            area = int(mask.sum())
            if area == 0:
                continue
            segments.append((mask, _STUFF_ID_OFFSET + s, _bbox(mask), area))
        segments_info = []
        for seg_id, (mask, cat_id, bbox, area) in enumerate(segments, 1):
            pan_ids[mask] = seg_id
            segments_info.append({
                'id': seg_id,
                'category_id': cat_id,
                'iscrowd': 0,
                'bbox': bbox,
                'area': area
            })
        n_segments += len(segments_info)
        pan_rgb = np.stack(
            [pan_ids % 256, pan_ids // 256 % 256, pan_ids // 65536 % 256],
            axis=-1).astype(np.uint8)

        img_png = _png_bytes(image)
        (dirs['img'] / file_name).write_bytes(img_png)
        (dirs['sem_img'] / file_name).write_bytes(img_png)
        (dirs['sem_ann'] / file_name).write_bytes(_png_bytes(semantic))
        (dirs['pan'] / file_name).write_bytes(_png_bytes(pan_rgb))

        images.append({
            'id': image_id,
            'file_name': file_name,
            'height': size,
            'width': size
        })
        pan_anns.append({
            'image_id': image_id,
            'file_name': file_name,
            'segments_info': segments_info
        })

    _dump_json({
        'info': _coco_info(split),
        'licenses': [],
        'images': images,
        'annotations': inst_anns,
        'categories': _things_categories()
    }, coco / 'annotations' / f'instances_{split}.json')
    _dump_json({
        'info': _coco_info(split),
        'licenses': [],
        'images': images,
        'annotations': pan_anns,
        'categories': _panoptic_categories()
    }, coco / 'annotations' / f'panoptic_{split}.json')
    return {
        'scenes': num,
        'instances': len(inst_anns),
        'panoptic_segments': n_segments
    }


def _write_classification(root: Path, split: str, per_class: int,
                          grid: _Grid, seed: int) -> int:
    cls_root = root / 'classification'
    (cls_root / 'meta').mkdir(parents=True, exist_ok=True)
    lines = []
    width = _digits(per_class)
    for label, name in enumerate(CLASSIFICATION_CLASSES):
        folder = cls_root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = _rng(seed, _TASK_CLS, _SPLIT_CODE[split], label, i)
            image = _render_classification(label, grid, rng)
            file_name = f'{i + 1:0{width}d}.png'
            (folder / file_name).write_bytes(_png_bytes(image))
            lines.append(f'{name}/{file_name} {label}\n')
    (cls_root / 'meta' / f'{split}.txt').write_text(
        ''.join(lines), encoding='utf-8')
    return len(lines)


def _generate(root: Path, size: int, seed: int, counts: dict,
              cls_counts: dict) -> dict:
    grid = _Grid(size)
    splits = {}
    for split in SPLITS:
        info = {
            'classification_images':
            _write_classification(root, split, cls_counts[split], grid,
                                  seed)
        }
        info.update(_write_scenes(root, split, counts[split], grid, seed))
        splits[split] = info
    (root / 'classification' / 'meta' / 'classes.txt').write_text(
        ''.join(f'{c}\n' for c in CLASSIFICATION_CLASSES), encoding='utf-8')
    meta = {
        'name': 'shapes',
        'format_version': FORMAT_VERSION,
        'size': size,
        'seed': seed,
        'classification_classes': list(CLASSIFICATION_CLASSES),
        'thing_classes': list(THING_CLASSES),
        'stuff_classes': list(STUFF_CLASSES),
        'semantic_classes': list(SEMANTIC_CLASSES),
        'palette': [list(c) for c in SEMANTIC_PALETTE],
        'thing_palette': [list(c) for c in THING_PALETTE],
        'stuff_palette': [list(c) for c in STUFF_PALETTE],
        'coco_category_ids': {
            name: (_THING_ID_OFFSET + i if i < len(THING_CLASSES) else
                   _STUFF_ID_OFFSET + i - len(THING_CLASSES))
            for i, name in enumerate(SEMANTIC_CLASSES)
        },
        'ignore_index': 255,
        'splits': splits
    }
    _dump_json(meta, root / 'meta.json', indent=2)
    return meta


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------
def _read_stamp(folder: Path):
    try:
        return json.loads((folder / STAMP_NAME).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None


def make_shapes(out='data/shapes',
                size: int = 64,
                seed: int = 0,
                num_train: int = 160,
                num_val: int = 40,
                cls_per_class_train: int = 400,
                cls_per_class_val: int = 50,
                force: bool = False) -> Path:
    """Generate the shapes data set into ``out`` and return its path.

    If ``out`` already holds a complete data set made with the same
    arguments, return at once without touching it. If it holds anything
    else, raise :class:`FileExistsError` unless ``force`` is true.
    The data set is built in a temporary sibling folder and renamed into
    place at the end, so an interrupted run leaves no partial data set.
    """
    size = _check_int('size', size, MIN_SIZE)
    seed = _check_int('seed', seed, 0)
    num_train = _check_int('num_train', num_train, 0)
    num_val = _check_int('num_val', num_val, 0)
    cls_per_class_train = _check_int('cls_per_class_train',
                                     cls_per_class_train, 0)
    cls_per_class_val = _check_int('cls_per_class_val', cls_per_class_val,
                                   0)
    if out is None or str(out) == '':
        raise ValueError('--out (out) must be a folder path, got '
                         f'{out!r}')
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f'--out (out) {str(out)!r} exists and is not a '
                         'folder')

    stamp = {
        'generator': 'mmcf tools/dataset/make_shapes.py',
        'format_version': FORMAT_VERSION,
        'size': size,
        'seed': seed,
        'num_train': num_train,
        'num_val': num_val,
        'cls_per_class_train': cls_per_class_train,
        'cls_per_class_val': cls_per_class_val,
    }
    if out.is_dir() and not force:
        existing = _read_stamp(out)
        if existing == stamp:
            return out
        older = existing is not None and {**existing, 'format_version': FORMAT_VERSION} == stamp
        if older:  # our own data set, same arguments, older format: remake it
            print(f'{out}: made by an older generator (format '
                  f'{existing.get("format_version")}), regenerating')
        elif existing is not None or any(out.iterdir()):
            what = ('was made with other arguments'
                    if existing is not None else
                    'is not empty and is not a complete shapes data set')
            raise FileExistsError(
                f'output folder {str(out)!r} already exists and {what}; '
                'pass --force (force=True) to replace it')

    with written_atomically(out) as tmp:
        _generate(tmp, size, seed, {
            'train': num_train,
            'val': num_val
        }, {
            'train': cls_per_class_train,
            'val': cls_per_class_val
        })
        _dump_json(stamp, tmp / STAMP_NAME, indent=2)
    return out


@contextlib.contextmanager
def written_atomically(out: Path) -> Iterator[Path]:
    """Write the folder ``out`` as a whole: yields an empty temporary sibling
    to fill; when the block ends without an error it takes ``out``'s place
    (an existing ``out`` is moved aside first and removed after), on any
    error (a kill included, as far as Python sees it) it is removed and
    ``out`` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    token = f'{os.getpid()}-{secrets.token_hex(4)}'
    tmp = out.parent / f'.{out.name}.tmp-{token}'
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f'.{out.name}.old-{token}'
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def summary(out) -> str:
    """One-line description of a generated data set."""
    out = Path(out)
    meta = json.loads((out / 'meta.json').read_text(encoding='utf-8'))
    parts = []
    for split in SPLITS:
        s = meta['splits'][split]
        parts.append(f"{split}: {s['classification_images']} cls images, "
                     f"{s['scenes']} scenes, {s['instances']} instances, "
                     f"{s['panoptic_segments']} panoptic segments")
    return (f"shapes ({meta['size']}px, seed {meta['seed']}) in {out}: " +
            '; '.join(parts))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the synthetic "shapes" data set '
        '(classification, COCO instances/panoptic, semantic segmentation).')
    parser.add_argument('--out', default='data/shapes',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--size', type=int, default=64,
                        help='image side in pixels, >= 32 '
                        '(default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed, >= 0 (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=160,
                        help='train scenes (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=40,
                        help='val scenes (default: %(default)s)')
    parser.add_argument('--cls-per-class-train', type=int, default=400,
                        help='train classification images per class '
                        '(default: %(default)s)')
    parser.add_argument('--cls-per-class-val', type=int, default=50,
                        help='val classification images per class '
                        '(default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing output folder')
    return parser, parser.parse_args(argv)


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        out = make_shapes(args.out, size=args.size, seed=args.seed,
                          num_train=args.num_train, num_val=args.num_val,
                          cls_per_class_train=args.cls_per_class_train,
                          cls_per_class_val=args.cls_per_class_val,
                          force=args.force)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))  # exits with status 2
    print(summary(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
