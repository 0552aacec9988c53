"""FastCocoMetric: mmdet's CocoMetric with hotcoco gives pycocotools' numbers."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

import mmcf  # noqa: F401
from mmcf.evaluation import FastCocoMetric


def _predictions(ann_file, seed=0):
    """Per image, the ground truth shifted and rescored: some hits, some
    misses, some duplicates, boxes and masks."""
    rng = np.random.default_rng(seed)
    data = json.load(open(ann_file))
    cats = sorted(c['id'] for c in data['categories'])
    images = {im['id']: im for im in data['images']}
    by_img = {i: [] for i in images}
    for ann in data['annotations']:
        by_img[ann['image_id']].append(ann)
    samples = []
    for img_id, anns in sorted(by_img.items()):
        h, w = images[img_id]['height'], images[img_id]['width']
        boxes, labels, scores, masks = [], [], [], []
        for ann in anns + anns[:1]:  # a duplicate of the first object
            x, y, bw, bh = ann['bbox']
            dx, dy = rng.integers(-2, 3, 2)
            boxes.append([x + dx, y + dy, x + dx + bw, y + dy + bh])
            label = cats.index(ann['category_id']) if rng.random() > 0.2 else \
                int(rng.integers(0, len(cats)))
            labels.append(label)
            scores.append(float(rng.random()))
            seg = ann['segmentation']
            m = mask_util.decode(mask_util.frPyObjects(seg, h, w)) if isinstance(seg, list) \
                else mask_util.decode(dict(seg, counts=seg['counts'].encode()))
            if m.ndim == 3:
                m = m.max(-1)
            masks.append(np.roll(m, (int(dy), int(dx)), axis=(0, 1)))
        pred = dict(bboxes=torch.tensor(boxes, dtype=torch.float32),
                    labels=torch.tensor(labels), scores=torch.tensor(scores),
                    masks=torch.from_numpy(np.stack(masks)).bool())
        samples.append(dict(img_id=img_id, ori_shape=(h, w), pred_instances=pred))
    return samples, [c['name'] for c in sorted(data['categories'], key=lambda c: c['id'])]


def test_hotcoco_backend_equals_pycocotools(shapes_root, tmp_path):
    from mmdet.evaluation.metrics import CocoMetric
    ann_file = osp.join(str(shapes_root), 'coco', 'annotations', 'instances_val.json')
    samples, classes = _predictions(ann_file)
    out = {}
    for name, metric in (('mmdet', CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'],
                                              classwise=True)),
                         ('hotcoco', FastCocoMetric(ann_file=ann_file,
                                                    metric=['bbox', 'segm'], classwise=True)),
                         ('pycocotools', FastCocoMetric(ann_file=ann_file,
                                                        metric=['bbox', 'segm'],
                                                        backend='pycocotools'))):
        metric.dataset_meta = dict(classes=classes)
        metric.process({}, samples)
        out[name] = metric.compute_metrics(metric.results)
    keys = [k for k in out['mmdet'] if 'mAP' in k]
    assert len(keys) == 12 and out['mmdet']['bbox_mAP'] > 0.1
    for k in keys:
        assert out['hotcoco'][k] == pytest.approx(out['mmdet'][k], abs=1e-9), k
        assert out['pycocotools'][k] == out['mmdet'][k], k


def test_backend_is_checked():
    with pytest.raises(ValueError, match='backend'):
        FastCocoMetric(ann_file=None, backend='faster')
