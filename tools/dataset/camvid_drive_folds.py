#!/usr/bin/env python
"""Cross-validation by drive on the CamVid copy: train on two drives,
validate on the third.

CamVid's frames come from drives named by the first part of each file name
(``0001TP_006690.png``): the shared copy's train split holds 0001TP (62),
0006R0 (101) and 0016E5 (204 frames), its val split 101 more frames of
0016E5. Val is therefore a test of frames next to the training ones, not of
new scenes. A drive fold pools both splits and holds one drive out: its
train list has every frame of the other drives, its val list every frame of
the held-out drive, so no frame of a validated drive is ever trained on and
no test split is touched.

    python tools/dataset/camvid_drive_folds.py DATA_ROOT --out DIR [--drives ...]

writes, per held-out drive ``X``, ``DIR/X_train.txt`` and ``DIR/X_val.txt``
(mmseg ``ann_file`` lists: ``train/0001TP_006690`` is
``img_dir/train/0001TP_006690.png`` with its label map
``ann_dir/train/0001TP_006690.png``) and ``DIR/X.options``, the
``--cfg-options`` that point a CamVid config at the fold::

    python tools/train.py configs/segmentation/clusterformer-test_1xb8-2k_camvid-96x128.py \\
        --cfg-options $(cat DIR/0016E5.options) randomness.seed=0

``tools/analysis/compare_heads.py --tasks camvid-drives`` runs every fold of
every head this way. The lists are rewritten only when their content
changes, atomically.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

#: the drives of the shared copy (train and val splits together)
DRIVES = ('0001TP', '0006R0', '0016E5')
SPLITS = ('train', 'val')
IMAGE_SUFFIX = '.png'


def drive_of(name: str) -> str:
    """The drive of a CamVid frame name (``0016E5_07959`` -> ``0016E5``)."""
    return osp.basename(name).split('_', 1)[0]


def frames(data_root: str, splits: Sequence[str] = SPLITS) -> List[str]:
    """Every frame of ``splits`` as ``split/stem``, sorted; an image without
    its label map is refused by name."""
    out = []
    for split in splits:
        img_dir = osp.join(data_root, 'img_dir', split)
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'{img_dir}: no such folder (DATA_ROOT must hold '
                                    'img_dir/{train,val} and ann_dir/{train,val})')
        for name in sorted(os.listdir(img_dir)):
            if not name.endswith(IMAGE_SUFFIX):
                continue
            stem = name[:-len(IMAGE_SUFFIX)]
            label = osp.join(data_root, 'ann_dir', split, name)
            if not osp.isfile(label):
                raise FileNotFoundError(f'{label}: the label map of {osp.join(img_dir, name)} '
                                        'is missing')
            out.append(f'{split}/{stem}')
    return out


def fold_lists(names: Sequence[str], holdout: str) -> Tuple[List[str], List[str]]:
    """(train, val) of the fold that holds ``holdout`` out."""
    train = [n for n in names if drive_of(n) != holdout]
    val = [n for n in names if drive_of(n) == holdout]
    if not val:
        raise ValueError(f'drive {holdout!r} has no frame; drives present: '
                         f'{sorted({drive_of(n) for n in names})}')
    if not train:
        raise ValueError(f'holding out {holdout!r} leaves no frame to train on')
    return train, val


def fold_options(train_file: str, val_file: str) -> List[str]:
    """``--cfg-options`` that make a CamVid config train on ``train_file``
    and validate (and test) on ``val_file``."""
    opts = []
    for loader, path in (('train', train_file), ('val', val_file), ('test', val_file)):
        key = f'{loader}_dataloader.dataset'
        opts += [f'{key}.ann_file={osp.abspath(path)}', f'{key}.data_prefix.img_path=img_dir',
                 f'{key}.data_prefix.seg_map_path=ann_dir']
    return opts


def _write(path: str, text: str) -> None:
    """Write ``text`` unless the file already holds it; atomically."""
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def write_folds(data_root: str, out_dir: str, drives: Sequence[str] = DRIVES
                ) -> Dict[str, List[str]]:
    """Write every fold's lists and options; returns drive -> cfg-options."""
    names = frames(data_root)
    os.makedirs(out_dir, exist_ok=True)
    options = {}
    for drive in drives:
        train, val = fold_lists(names, drive)
        files = []
        for part, lines in (('train', train), ('val', val)):
            path = osp.join(out_dir, f'{drive}_{part}.txt')
            _write(path, '\n'.join(lines) + '\n')
            files.append(path)
        options[drive] = fold_options(*files)
        _write(osp.join(out_dir, f'{drive}.options'), ' '.join(options[drive]) + '\n')
    return options


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data_root', help='the CamVid copy (img_dir/, ann_dir/)')
    p.add_argument('--out', required=True, help='folder of the fold lists')
    p.add_argument('--drives', nargs='+', default=list(DRIVES))
    args = p.parse_args(argv)
    try:
        options = write_folds(args.data_root, args.out, args.drives)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    names = frames(args.data_root)
    for drive in options:
        train, val = fold_lists(names, drive)
        print(f'{drive}: train {len(train)} frames, val {len(val)} frames -> '
              f'{osp.join(args.out, drive + ".options")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
