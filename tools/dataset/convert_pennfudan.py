#!/usr/bin/env python
"""Convert the Penn-Fudan pedestrian database to COCO instances, resized.

Source layout (``SRC``), as the database is published::

    PNGImages/FudanPed00001.png   PedMasks/FudanPed00001_mask.png   ...
    PNGImages/PennPed00001.png    PedMasks/PennPed00001_mask.png    ...

A mask holds 0 for the background and ``k > 0`` for the k-th person.

Output layout (``OUT``), what mmdet's ``CocoDataset`` reads::

    {split}/NAME.png                         RGB, longer side --size (bilinear)
    annotations/instances_{split}.json       one class 'person'

Each person becomes one annotation: its mask (resized nearest) as compressed
RLE, the box of the mask and its area; a person whose resized mask is
narrower or lower than ``--min-size`` pixels (4) is dropped. The photos,
sorted by name, are shuffled with ``random.Random(seed)`` (seed 0) and split
in order: 100 train, 20 val, the rest (50) test. With the defaults this
gives the shared copy ``../shared/data/pennfudan_128`` (whose test split is
held back). Image and annotation ids count from 1 in file-name order.

Usage::

    python tools/dataset/convert_pennfudan.py SRC OUT [--size 128] [--min-size 4]
        [--seed 0] [--split-sizes 100 20] [--splits train val test] [--force]

Every photo is checked (a photo without its mask or the reverse, a mask whose
size differs from its photo, a photo without a person) and the error names
the file. The output is written to a temporary sibling folder and renamed
to ``OUT`` at the end, so a failed run leaves no partial ``OUT``; an
existing non-empty ``OUT`` is refused unless ``--force``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_shapes import written_atomically  # noqa: E402  (the same atomic folder write)

CLASSES = ('person', )
MASK_SUFFIX = '_mask.png'
SPLITS = ('train', 'val', 'test')


class ConversionError(ValueError):
    """A problem with the source data (the message names the file or folder)."""


def resized_size(width: int, height: int, longer: int) -> Tuple[int, int]:
    """(W, H) with the longer side ``longer`` and the aspect ratio kept
    (rounded, at least 1)."""
    scale = longer / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def list_pairs(src: Path) -> List[Tuple[str, Path, Path]]:
    """(name, photo, mask) of every photo, sorted by name; a photo without
    its mask or a mask without its photo is refused by name."""
    img_dir, mask_dir = src / 'PNGImages', src / 'PedMasks'
    for folder in (img_dir, mask_dir):
        if not folder.is_dir():
            raise ConversionError(f'{folder} is missing (expected PNGImages/ and PedMasks/ '
                                  f'under {src})')
    photos = {p.stem: p for p in img_dir.iterdir() if p.suffix.lower() == '.png'}
    masks = {p.name[:-len(MASK_SUFFIX)]: p for p in mask_dir.iterdir()
             if p.name.endswith(MASK_SUFFIX)}
    for names, where, what in ((set(photos) - set(masks), mask_dir, 'mask'),
                               (set(masks) - set(photos), img_dir, 'photo')):
        if names:
            listed = ', '.join(sorted(names)[:5])
            raise ConversionError(f'{len(names)} file(s) have no {what} in {where}: {listed}')
    if not photos:
        raise ConversionError(f'no photos in {img_dir}')
    return [(name, photos[name], masks[name]) for name in sorted(photos)]


def split_names(names: Sequence[str], seed: int = 0, sizes: Sequence[int] = (100, 20)
                ) -> Dict[str, List[str]]:
    """The names shuffled with ``random.Random(seed)``, cut into train
    (``sizes[0]``), val (``sizes[1]``) and test (the rest)."""
    if sum(sizes) > len(names):
        raise ConversionError(f'split sizes {list(sizes)} need {sum(sizes)} photos, the source '
                              f'has {len(names)}')
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_train, n_val = sizes
    return dict(train=order[:n_train], val=order[n_train:n_train + n_val],
                test=order[n_train + n_val:])


def person_annotations(mask: np.ndarray, min_size: int) -> List[dict]:
    """One COCO annotation (no ids) per person ``k > 0`` of a resized mask,
    in the order of ``k``: compressed RLE, area and box of its pixels;
    persons narrower or lower than ``min_size`` pixels are dropped."""
    from pycocotools import mask as mask_utils
    out = []
    for k in sorted(int(v) for v in np.unique(mask) if v > 0):
        binary = np.asfortranarray((mask == k).astype(np.uint8))
        rle = mask_utils.encode(binary)
        box = [float(v) for v in mask_utils.toBbox(rle)]
        if box[2] < min_size or box[3] < min_size:
            continue
        rle['counts'] = rle['counts'].decode('ascii')
        out.append(dict(category_id=1, iscrowd=0, segmentation=rle,
                        area=float(mask_utils.area(rle)), bbox=box))
    return out


def convert_pair(photo: Path, mask_path: Path, longer: int, min_size: int, out_img: Path
                 ) -> Tuple[dict, List[dict]]:
    """Resize one photo and its mask, write the photo; returns the image
    entry (no id) and its person annotations."""
    try:
        with Image.open(photo) as im:
            image = im.convert('RGB')
        with Image.open(mask_path) as im:
            mask = np.array(im)
    except Exception as e:  # noqa: BLE001  (PIL raises several types)
        raise ConversionError(f'{photo} or {mask_path} cannot be read: '
                              f'{type(e).__name__}: {e}') from e
    if mask.ndim != 2:
        raise ConversionError(f'{mask_path} has shape {mask.shape}: expected one channel of '
                              'person indices')
    if mask.shape != (image.height, image.width):
        raise ConversionError(f'{mask_path} is {mask.shape[0]}x{mask.shape[1]} (HxW) but its '
                              f'photo {photo} is {image.height}x{image.width}')
    size = resized_size(image.width, image.height, longer)
    image.resize(size, Image.Resampling.BILINEAR).save(out_img)
    small = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(
        size, Image.Resampling.NEAREST))
    entry = dict(file_name=out_img.name, width=size[0], height=size[1])
    return entry, person_annotations(small, min_size)


def convert_pennfudan(src, out, size: int = 128, min_size: int = 4, seed: int = 0,
                      split_sizes: Sequence[int] = (100, 20),
                      splits: Sequence[str] = SPLITS, force: bool = False,
                      verbose: bool = True) -> Dict[str, Tuple[int, int]]:
    """Convert Penn-Fudan under ``src`` into ``out``; returns split ->
    (photos, persons)."""
    src, out = Path(src), Path(out)
    if size < 1 or min_size < 0:
        raise ValueError(f'size must be >= 1 and min_size >= 0, got {size}, {min_size}')
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f'unknown splits {unknown}; choose from {SPLITS}')
    if out.exists() and any(out.iterdir()) and not force:
        raise ConversionError(f'{out} exists and is not empty (use --force to replace it)')
    pairs = {name: (photo, mask) for name, photo, mask in list_pairs(src)}
    by_split = split_names(list(pairs), seed, split_sizes)
    report = {}
    with written_atomically(out) as tmp:
        (tmp / 'annotations').mkdir()
        for split in splits:
            (tmp / split).mkdir()
            images, anns = [], []
            for name in sorted(by_split[split]):
                photo, mask = pairs[name]
                entry, persons = convert_pair(photo, mask, size, min_size,
                                              tmp / split / f'{name}.png')
                entry['id'] = len(images) + 1
                images.append(entry)
                for a in persons:
                    anns.append(dict(id=len(anns) + 1, image_id=entry['id'], **a))
            coco = dict(images=images, annotations=anns,
                        categories=[dict(id=1, name='person')])
            with open(tmp / 'annotations' / f'instances_{split}.json', 'w') as f:
                json.dump(coco, f)
            report[split] = (len(images), len(anns))
            if verbose:
                print(f'{split}: {len(images)} photos, {len(anns)} people -> '
                      f'{out}/{split}, {out}/annotations/instances_{split}.json')
    return report


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='the published folder (PNGImages/, PedMasks/)')
    p.add_argument('out', help='output folder (COCO layout)')
    p.add_argument('--size', type=int, default=128, help='longer side in pixels')
    p.add_argument('--min-size', type=int, default=4,
                   help='drop people narrower or lower than this (pixels, after resizing)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--split-sizes', type=int, nargs=2, default=(100, 20),
                   metavar=('TRAIN', 'VAL'), help='the rest is the test split')
    p.add_argument('--splits', nargs='+', default=list(SPLITS), choices=SPLITS)
    p.add_argument('--force', action='store_true')
    args = p.parse_args(argv)
    try:
        convert_pennfudan(args.src, args.out, args.size, args.min_size, args.seed,
                          args.split_sizes, args.splits, args.force)
    except (ConversionError, ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
