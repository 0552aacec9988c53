"""Validate a data root before training, in each on-disk format mmcf uses.

Each ``check_*`` function reads the annotation files and (optionally) every
image or label map, and raises :class:`DatasetError` listing the problems it
found, each naming the file and the key or value at fault. The same checks
serve ``tools/train.py --check-data`` (through
:func:`~mmcf.datasets.config_check.check_dataset_cfg`, which reads a dataset
config) and ``tools/dataset/check_dataset.py``
(:func:`~mmcf.datasets.config_check.check_data_root`).

Formats: image folder + ``meta/*.txt`` (mmpretrain ``CustomDataset``), COCO
instances JSON, COCO panoptic JSON + PNG, and semantic label maps
(mmseg ``BaseSegDataset``).
"""
from __future__ import annotations

import json
import logging
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageFile

from .panoptic_io import rgb2id, segment_id_mismatch

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
MAX_LISTED = 20


class DatasetError(ValueError):
    """A data set that cannot be trained on; the message lists every problem."""


class _Problems:
    """Collects problems and raises them together."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: List[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        listed = '\n'.join(f'  - {m}' for m in self.items[:MAX_LISTED])
        more = (f'\n  ... and {len(self.items) - MAX_LISTED} more'
                if len(self.items) > MAX_LISTED else '')
        raise DatasetError(f'{len(self.items)} problem(s) in {self.what}:\n{listed}{more}')


def check_inside(path: str, root: Optional[str], problems: _Problems, where: str) -> bool:
    """Record a problem when ``path`` (resolved, links followed) lies outside
    ``root``; True when it is inside or ``root`` is None (no rule)."""
    if not root:
        return True
    real, base = osp.realpath(path), osp.realpath(root)
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        return True
    problems.add(f'{where}: {path} lies outside the data root {root} (resolved to {real}); '
                 'a data set reads only files under its data_root unless the config sets '
                 'allow_outside_data_root=True')
    return False


def read_image(path: str, problems: _Problems, what: str = 'image') -> Optional[np.ndarray]:
    """Decode ``path`` fully; on failure record a problem and return None."""
    if not osp.isfile(path):
        problems.add(f'{what} {path} does not exist')
        return None
    if osp.getsize(path) == 0:
        problems.add(f'{what} {path} is empty (0 bytes)')
        return None
    # a library may have set LOAD_TRUNCATED_IMAGES globally; a truncated
    # file is a problem here whatever that setting
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except Exception as e:  # noqa: BLE001  (PIL raises several types)
        problems.add(f'{what} {path} cannot be decoded: {type(e).__name__}: {e}')
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def load_json(path: str, problems: _Problems) -> Optional[Any]:
    """Parse a JSON file; a missing or truncated file becomes a problem."""
    if not osp.isfile(path):
        problems.add(f'annotation file {path} does not exist')
        return None
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        problems.add(f'annotation file {path} is not valid JSON (truncated?): {e}')
        return None


# --------------------------------------------------------------------------
# classification: <data_prefix>/<path> <label> lines in ann_file
# --------------------------------------------------------------------------
def check_classification(data_root: str, ann_file: str = 'meta/train.txt',
                         data_prefix: str = 'train', num_classes: Optional[int] = None,
                         check_images: bool = True, check_files: bool = True,
                         root: Optional[str] = None) -> Dict[str, int]:
    """Check an mmpretrain ``CustomDataset`` annotation file and its images
    (decoded with ``check_images``, looked for with ``check_files``); with
    ``root``, every image must lie under it."""
    ann = osp.join(data_root, ann_file)
    problems = _Problems(ann)
    if not osp.isfile(ann):
        problems.add(f'annotation file {ann} does not exist')
        problems.raise_if_any()
    with open(ann, encoding='utf-8') as f:
        lines = [(i, line.strip()) for i, line in enumerate(f, 1) if line.strip()]
    if not lines:
        problems.add(f'annotation file {ann} lists no samples')
    for lineno, line in lines:
        parts = line.rsplit(' ', 1)
        where = f'{ann}:{lineno}'
        if len(parts) != 2:
            problems.add(f"{where}: expected '<image path> <label>', got {line!r}")
            continue
        path, label = parts
        try:
            value = int(label)
        except ValueError:
            problems.add(f"{where}: label {label!r} is not an integer (line {line!r}; "
                         "expected '<image path> <class index>')")
            continue
        if value < 0 or (num_classes is not None and value >= num_classes):
            problems.add(f'{where}: label {value} is outside 0..{(num_classes or 1) - 1} '
                         f'(num_classes={num_classes})')
        img = osp.join(data_root, data_prefix, path)
        if not check_inside(img, root, problems, where):
            continue
        if check_images:
            read_image(img, problems)
        elif check_files and not osp.isfile(img):
            problems.add(f'image {img} ({where}) does not exist')
    problems.raise_if_any()
    return {'samples': len(lines)}


# --------------------------------------------------------------------------
# semantic segmentation: img_dir/<name><img_suffix>, ann_dir/<name><seg_suffix>
# --------------------------------------------------------------------------
def check_semantic(img_dir: str, ann_dir: str, num_classes: int, img_suffix: str = '.png',
                   seg_map_suffix: str = '.png', ignore_index: int = 255,
                   reduce_zero_label: bool = False, ann_file: Optional[str] = None,
                   root: Optional[str] = None, check_files: bool = True) -> Dict[str, int]:
    """Check image/label-map pairs: present, decodable, same size, one
    channel, values in ``0..num_classes-1`` or ``ignore_index``. The pairs
    are the images of ``img_dir``, or the names ``ann_file`` lists (mmseg's
    ``ann_file``: one name per line, relative to ``img_dir``); with
    ``root``, every file must lie under it. ``check_files=False``: only
    that (no file is opened)."""
    problems = _Problems(f'semantic data {img_dir} / {ann_dir}')
    if not osp.isdir(img_dir):
        problems.add(f'image folder {img_dir} does not exist')
        problems.raise_if_any()
    if ann_file:
        if not osp.isfile(ann_file):
            problems.add(f'annotation file {ann_file} does not exist')
            problems.raise_if_any()
        with open(ann_file, encoding='utf-8') as f:
            names = [line.strip() + img_suffix for line in f if line.strip()]
    else:
        names = sorted(n for n in os.listdir(img_dir) if n.endswith(img_suffix))
    if not names:
        problems.add(f'{ann_file or img_dir} has no {img_suffix} images')
    for name in names:
        if not (check_inside(osp.join(img_dir, name), root, problems, ann_file or img_dir)
                and check_inside(osp.join(ann_dir, name), root, problems, ann_file or ann_dir)
                and check_files):
            continue
        img = read_image(osp.join(img_dir, name), problems)
        seg_path = osp.join(ann_dir, name[:-len(img_suffix)] + seg_map_suffix)
        seg = read_image(seg_path, problems, what='label map')
        if img is None or seg is None:
            continue
        if seg.ndim != 2:
            problems.add(f'label map {seg_path} has {seg.shape[2]} channels; a label map '
                         'has one (mode L or P) holding class indices')
            continue
        if seg.shape != img.shape[:2]:
            problems.add(f'label map {seg_path} is {seg.shape[0]}x{seg.shape[1]} but its image '
                         f'{osp.join(img_dir, name)} is {img.shape[0]}x{img.shape[1]}')
        values = np.unique(seg).astype(np.int64)
        if reduce_zero_label:
            values = np.where(values == 0, ignore_index, values - 1)
        bad = [int(v) for v in values if v != ignore_index and not 0 <= v < num_classes]
        if bad:
            problems.add(f'label map {seg_path} holds label value(s) {bad[:5]} outside '
                         f'0..{num_classes - 1} (num_classes={num_classes}, '
                         f'ignore_index={ignore_index})')
    problems.raise_if_any()
    return {'samples': len(names)}


# --------------------------------------------------------------------------
# COCO instances and panoptic
# --------------------------------------------------------------------------
def _coco_index(data: Any, ann_file: str, problems: _Problems
                ) -> Tuple[Dict[int, dict], Dict[int, dict]]:
    """Images and categories by id, recording structural problems."""
    if not isinstance(data, dict):
        problems.add(f'{ann_file}: top level is a {type(data).__name__}, not a JSON object')
        return {}, {}
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            problems.add(f'{ann_file}: key {key!r} is missing or not a list')
    images, cats = {}, {}
    for img in data.get('images') or []:
        if not isinstance(img, dict) or not {'id', 'file_name'} <= set(img):
            problems.add(f'{ann_file}: image entry {img!r} needs "id" and "file_name"')
        elif img['id'] in images:
            problems.add(f'{ann_file}: image id {img["id"]} appears twice')
        else:
            images[img['id']] = img
    for cat in data.get('categories') or []:
        if isinstance(cat, dict) and 'id' in cat:
            cats[cat['id']] = cat
        else:
            problems.add(f'{ann_file}: category entry {cat!r} has no "id"')
    return images, cats


def _check_image_files(images: Dict[int, dict], img_dir: str, problems: _Problems,
                       check_images: bool, check_files: bool = True,
                       root: Optional[str] = None) -> None:
    for img in images.values():
        path = osp.join(img_dir, str(img['file_name']))
        if not check_inside(path, root, problems, f'image id {img["id"]} (file_name '
                                                  f'{img["file_name"]!r})'):
            continue
        if not (check_images or check_files):
            continue
        if not check_images:
            if not osp.isfile(path):
                problems.add(f'image {path} (image id {img["id"]}) does not exist')
            continue
        arr = read_image(path, problems)
        hw = (img.get('height'), img.get('width'))
        if arr is not None and None not in hw and tuple(arr.shape[:2]) != hw:
            problems.add(f'image {path} is {arr.shape[0]}x{arr.shape[1]} but its entry '
                         f'(id {img["id"]}) says height {hw[0]}, width {hw[1]}')


def _finite_numbers(values: Any, count: Optional[int] = None) -> bool:
    """A list of ``count`` (any if None) finite ints/floats (not bools)."""
    return (isinstance(values, list) and (count is None or len(values) == count)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in values))


def _check_segmentation(seg: Any, img: dict, where: str, problems: _Problems) -> None:
    """A polygon list or an RLE (``{'size': [h, w], 'counts': ...}``) that
    pycocotools can decode for its image."""
    if isinstance(seg, list):
        for poly in seg:
            if not _finite_numbers(poly) or len(poly) < 6 or len(poly) % 2:
                problems.add(f'{where} has a polygon {str(poly)[:80]}; expected [x1, y1, x2, '
                             'y2, ...] of at least 3 points, finite numbers')
                return
        return
    if not isinstance(seg, dict) or not {'size', 'counts'} <= set(seg):
        problems.add(f'{where} has segmentation {str(seg)[:80]}; expected polygons or an '
                     'RLE {"size": [h, w], "counts": ...}')
        return
    size, counts = seg['size'], seg['counts']
    hw = [img.get('height'), img.get('width')]
    if not (isinstance(size, list) and len(size) == 2) or (None not in hw and size != hw):
        problems.add(f'{where} has an RLE of size {size!r} but its image is '
                     f'{hw[0]}x{hw[1]} (size must be [height, width])')
        return
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            problems.add(f'{where} has RLE counts that are not non-negative integers')
        elif sum(counts) != size[0] * size[1]:
            problems.add(f'{where} has RLE counts summing to {sum(counts)} pixels, not '
                         f'{size[0]}x{size[1]}={size[0] * size[1]}')
        return
    if not isinstance(counts, (str, bytes)):
        problems.add(f'{where} has RLE counts of type {type(counts).__name__}')
        return
    try:
        runs = _rle_string_counts(counts.encode() if isinstance(counts, str) else counts)
    except ValueError as e:
        problems.add(f'{where} has a compressed RLE that does not decode: {e}')
        return
    if any(r < 0 for r in runs) or sum(runs) != size[0] * size[1]:
        problems.add(f'{where} has a compressed RLE whose runs cover {sum(runs)} pixels, not '
                     f'{size[0]}x{size[1]}={size[0] * size[1]} (or a negative run)')


def _rle_string_counts(data: bytes) -> List[int]:
    """The run lengths of a COCO compressed RLE string.

    COCO's format: each run is a signed number in 5-bit groups, least
    significant first, each group + 48 as one character, bit 0x20 meaning
    "more groups follow"; from the third run on, a run is stored as the
    difference to the run two before. pycocotools decodes a cut or
    malformed string to a full-size mask of garbage, so the lengths are
    checked here.
    """
    counts: List[int] = []
    pos = 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(data):
                raise ValueError('the string ends inside a run length (truncated?)')
            c = data[pos] - 48
            if not 0 <= c < 64:
                raise ValueError(f'character {chr(data[pos])!r} at {pos} is not RLE')
            value |= (c & 0x1f) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def check_coco_instances(ann_file: str, img_dir: str, check_images: bool = True,
                         check_files: bool = True, logger: Any = 'current',
                         root: Optional[str] = None) -> Dict[str, int]:
    """Check a COCO instances file: structure, ids, boxes, masks, image files.

    Refused (:class:`DatasetError`): a missing ``images``/``annotations``/
    ``categories`` list, duplicate image ids, an annotation of an unknown
    image or category, a box that is not 4 finite numbers, has a negative
    width or height, or lies outside its image, a polygon or RLE mask that
    does not fit its image. Boxes narrower or lower than 1 px, which mmdet's
    ``CocoDataset`` drops from training without a word, are counted and
    named in a warning (and in the returned ``dropped_by_mmdet``).
    """
    problems = _Problems(ann_file)
    data = load_json(ann_file, problems)
    problems.raise_if_any()
    images, cats = _coco_index(data, ann_file, problems)
    anns = data.get('annotations') or [] if isinstance(data, dict) else []
    tiny = []
    for ann in anns:
        aid = ann.get('id', '?') if isinstance(ann, dict) else '?'
        where = f'{ann_file}: annotation id {aid}'
        if not isinstance(ann, dict):
            problems.add(f'{ann_file}: annotation {ann!r} is not an object')
            continue
        if ann.get('image_id') not in images:
            problems.add(f'{where} has image_id {ann.get("image_id")!r}, not in "images"')
        if ann.get('category_id') not in cats:
            problems.add(f'{where} has category_id {ann.get("category_id")!r}, not in '
                         f'"categories" (ids {sorted(cats)})')
        bbox = ann.get('bbox')
        if not _finite_numbers(bbox, 4):
            problems.add(f'{where} has bbox {bbox!r}; expected [x, y, width, height] of '
                         'finite numbers')
            continue
        x, y, w, h = bbox
        img = images.get(ann.get('image_id'), {})
        if ann.get('segmentation') is not None:
            _check_segmentation(ann['segmentation'], img, where, problems)
        W, H = img.get('width', float('inf')), img.get('height', float('inf'))
        if w < 0 or h < 0:
            problems.add(f'{where} has bbox {bbox} with a negative width or height '
                         '(COCO boxes are [x, y, width, height], not corners)')
        elif x < -1 or y < -1 or x + w > W + 1 or y + h > H + 1:
            problems.add(f'{where} has bbox {bbox}, outside its {W}x{H} image')
        elif w < 1 or h < 1:
            tiny.append(aid)
        if not _finite_numbers([ann.get('area')], 1):
            problems.add(f'{where} has area {ann.get("area")!r}; mmdet needs a finite number')
        elif ann['area'] <= 0 and not (w < 1 or h < 1):
            tiny.append(aid)
    _check_image_files(images, img_dir, problems, check_images, check_files, root)
    problems.raise_if_any()
    if tiny:
        from mmengine.logging import print_log
        print_log(f'{ann_file}: {len(tiny)} annotation(s) have a box narrower or lower than '
                  f'1 px, or an area <= 0, which mmdet\'s CocoDataset drops from training: ids {tiny[:10]}'
                  + (' ...' if len(tiny) > 10 else ''), logger=logger, level=logging.WARNING)
    return {'images': len(images), 'annotations': len(anns), 'dropped_by_mmdet': len(tiny)}


def check_coco_panoptic(ann_file: str, img_dir: str, seg_dir: str,
                        check_images: bool = True, check_files: bool = True,
                        root: Optional[str] = None) -> Dict[str, int]:
    """Check a COCO panoptic file against its PNGs: every listed segment id
    is in the PNG, every PNG id is listed, categories exist, sizes agree.
    Without ``check_files`` the JSON only (no PNG or image is opened). With
    ``root``, every image and PNG must lie under it."""
    problems = _Problems(ann_file)
    data = load_json(ann_file, problems)
    problems.raise_if_any()
    images, cats = _coco_index(data, ann_file, problems)
    anns = data.get('annotations') or []
    for ann in anns:
        if not isinstance(ann, dict) or 'file_name' not in ann:
            problems.add(f'{ann_file}: panoptic annotation {ann!r} has no "file_name"')
            continue
        png = osp.join(seg_dir, ann['file_name'])
        where = f'{ann_file}: image_id {ann.get("image_id")!r} ({png})'
        if ann.get('image_id') not in images:
            problems.add(f'{where}: image_id not in "images"')
        listed = {}
        for seg in ann.get('segments_info') or []:
            if seg.get('category_id') not in cats:
                problems.add(f'{where}: segment {seg.get("id")} has category_id '
                             f'{seg.get("category_id")!r}, not in "categories"')
            listed[seg.get('id')] = seg
        if not check_inside(png, root, problems, where) or not check_files:
            continue
        arr = read_image(png, problems, what='panoptic PNG')
        if arr is None:
            continue
        if arr.ndim != 3 or arr.shape[2] < 3:
            problems.add(f'panoptic PNG {png} is not an RGB image (shape {arr.shape})')
            continue
        missing, extra = segment_id_mismatch(rgb2id(arr[..., :3]), listed)
        if missing:
            problems.add(f'{where}: segment id(s) {missing} are listed in segments_info but '
                         'missing from the PNG')
        if extra:
            problems.add(f'{where}: the PNG holds segment id(s) {extra[:5]} that '
                         'segments_info does not list')
        img = images.get(ann.get('image_id'))
        if img and (img.get('height'), img.get('width')) != tuple(arr.shape[:2]):
            problems.add(f'panoptic PNG {png} is {arr.shape[0]}x{arr.shape[1]} but image '
                         f'{img["id"]} is {img.get("height")}x{img.get("width")}')
    _check_image_files(images, img_dir, problems, check_images, check_files, root)
    problems.raise_if_any()
    return {'images': len(images), 'annotations': len(anns)}
