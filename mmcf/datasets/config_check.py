"""Data checks driven by a dataset config (``tools/train.py --check-data``)
or by a whole shapes-style data root (``tools/dataset/check_dataset.py``):
they pick the format's check of :mod:`mmcf.datasets.data_check`."""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, Optional, Sequence

from .data_check import (DatasetError, check_classification, check_coco_instances,
                         check_coco_panoptic, check_semantic)


# --------------------------------------------------------------------------
# from a dataset config, and for a whole shapes-style data root
# --------------------------------------------------------------------------
def _join(root: Optional[str], path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _num_classes(cfg: dict, registry_scope: str) -> Optional[int]:
    classes = (cfg.get('metainfo') or {}).get('classes') or cfg.get('classes')
    if classes is None:
        try:
            if registry_scope == 'mmseg':
                from mmseg.registry import DATASETS
            else:
                from mmpretrain.registry import DATASETS
            classes = getattr(DATASETS.get(cfg['type']), 'METAINFO', {}).get('classes')
        except Exception:  # noqa: BLE001  (unknown type: no class count)
            classes = None
    if isinstance(classes, str):  # a classes.txt file
        with open(classes) as f:
            classes = [c for c in f.read().splitlines() if c.strip()]
    return len(classes) if classes is not None else None


def check_dataset_cfg(cfg: dict, check_images: bool = True, check_files: bool = True,
                      allow_outside_root: bool = False) -> Optional[Dict[str, int]]:
    """Run the check matching a dataset config's ``type``; None if unknown.

    ``check_images`` decodes every image and label map; ``check_files``
    (implied by ``check_images``) looks for every file. With neither, only
    the annotation files are read (cheap: what ``tools/train.py`` always
    runs); label maps are then not read, so semantic data are not checked.
    Every file an annotation names must lie under the dataset's
    ``data_root`` (a COCO ``file_name`` of ``../../val/x.png`` would train on
    another split) unless ``allow_outside_root`` (the config's
    ``allow_outside_data_root=True``).
    """
    check_files = check_files or check_images
    kind = str(cfg.get('type', '')).split('.')[-1]
    root = cfg.get('data_root', '') or ''
    inside = None if allow_outside_root or not root else root
    if kind in ('RepeatDataset', 'ClassBalancedDataset'):
        return check_dataset_cfg(cfg['dataset'], check_images, check_files, allow_outside_root)
    if kind == 'ConcatDataset':
        for sub in cfg['datasets']:
            check_dataset_cfg(sub, check_images, check_files, allow_outside_root)
        return {}
    if kind in ('CustomDataset', 'ImageNet'):
        prefix = cfg.get('data_prefix', '')
        prefix = prefix.get('img_path', '') if isinstance(prefix, dict) else prefix
        if not cfg.get('ann_file'):
            return None  # folder mode: mmpretrain derives labels from folders
        return check_classification(root, cfg['ann_file'], prefix,
                                    _num_classes(cfg, 'mmpretrain'), check_images, check_files,
                                    inside)
    if kind == 'CocoPanopticDataset':
        prefix = cfg.get('data_prefix', {})
        return check_coco_panoptic(_join(root, cfg['ann_file']),
                                   _join(root, prefix.get('img', '')),
                                   _join(root, prefix.get('seg', '')), check_images,
                                   check_files, inside)
    if kind == 'CocoDataset':
        prefix = cfg.get('data_prefix', {})
        return check_coco_instances(_join(root, cfg['ann_file']),
                                    _join(root, prefix.get('img', '')), check_images,
                                    check_files, root=inside)
    if kind.endswith('SegDataset') or kind in ('ADE20KDataset', 'CityscapesDataset'):
        prefix = cfg.get('data_prefix', {})
        num = _num_classes(cfg, 'mmseg')
        ann_file = cfg.get('ann_file') or None
        # without check_files only an ann_file's names are checked (where they lead)
        if num is None or not (check_files or (ann_file and inside)):
            return None
        return check_semantic(_join(root, prefix.get('img_path', '')),
                              _join(root, prefix.get('seg_map_path', '')), num,
                              cfg.get('img_suffix', '.jpg'), cfg.get('seg_map_suffix', '.png'),
                              cfg.get('ignore_index', 255), cfg.get('reduce_zero_label', False),
                              _join(root, ann_file) if ann_file else None, inside, check_files)
    return None


FORMATS = ('classification', 'coco', 'panoptic', 'semantic')


def check_data_root(root: str, formats: Sequence[str] = FORMATS,
                    splits: Sequence[str] = ('train', 'val'),
                    num_classes: Optional[Dict[str, int]] = None,
                    check_images: bool = True) -> Dict[str, Dict[str, int]]:
    """Check a data root laid out like the embedded shapes data set
    (``tools/dataset/make_shapes.py``); formats whose folder is absent are
    skipped. Class counts default to the root's ``meta.json``."""
    if not osp.isdir(root):
        raise DatasetError(f'data root {root} does not exist')
    meta = {}
    if osp.isfile(osp.join(root, 'meta.json')):
        with open(osp.join(root, 'meta.json')) as f:
            meta = json.load(f)
    counts = dict(classification=len(meta.get('classification_classes', [])) or None,
                  semantic=len(meta.get('semantic_classes', [])) or None)
    counts.update(num_classes or {})
    report: Dict[str, Dict[str, int]] = {}
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f'unknown format {fmt!r}; choose from {FORMATS}')
        for split in splits:
            key = f'{fmt}/{split}'
            if fmt == 'classification' and osp.isdir(osp.join(root, 'classification')):
                report[key] = check_classification(
                    osp.join(root, 'classification'), f'meta/{split}.txt', split,
                    counts['classification'], check_images, root=root)
            elif fmt in ('coco', 'panoptic') and osp.isdir(osp.join(root, 'coco')):
                coco = osp.join(root, 'coco')
                if fmt == 'coco':
                    report[key] = check_coco_instances(
                        osp.join(coco, 'annotations', f'instances_{split}.json'),
                        osp.join(coco, split), check_images, root=root)
                else:
                    report[key] = check_coco_panoptic(
                        osp.join(coco, 'annotations', f'panoptic_{split}.json'),
                        osp.join(coco, split), osp.join(coco, f'panoptic_{split}'),
                        check_images, root=root)
            elif fmt == 'semantic' and osp.isdir(osp.join(root, 'semantic')):
                if counts['semantic'] is None:
                    raise DatasetError(f'{root}: no meta.json; pass the semantic class count')
                sem = osp.join(root, 'semantic')
                report[key] = check_semantic(
                    osp.join(sem, 'img_dir', split), osp.join(sem, 'ann_dir', split),
                    counts['semantic'])
    return report
