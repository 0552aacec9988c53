"""Time PanopticQualityMetric on COCO-sized fake panoptic data.

    python tools/analysis/benchmark_pq.py [--num-images 5000] [--height 480]
        [--width 640] [--segments 20] [--work-dir /tmp/pq_bench]

Writes ``--num-images`` ground-truth PNGs with ``--segments`` segments each
(rectangles of random COCO thing and stuff categories, a crowd region and
unlabeled pixels), makes a prediction per image by shifting every segment a
few pixels and relabelling a few, then times the metric's ``process`` (PNG
reading, RLE encoding) and ``compute_metrics`` (the matching and averaging)
and prints PQ and the times. The data generation is not timed.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))))
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmcf.evaluation import PanopticQualityMetric  # noqa: E402

OFFSET = 1000  # mmdet's INSTANCE_OFFSET
NUM_THINGS, NUM_STUFF = 80, 53


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num-images', type=int, default=5000)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--segments', type=int, default=20)
    parser.add_argument('--work-dir', default='/tmp/pq_bench')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def _image(rng, h, w, n):
    """Ground-truth ids, segments_info, and a prediction (mmdet format)."""
    ids = np.zeros((h, w), np.int64)
    segments = []
    for k in range(n):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        y1, x1 = y0 + rng.integers(8, h // 2), x0 + rng.integers(8, w // 2)
        seg_id = k + 1
        thing = k % 3 != 0
        label = int(rng.integers(0, NUM_THINGS)) if thing else \
            NUM_THINGS + int(rng.integers(0, NUM_STUFF))
        ids[y0:y1, x0:x1] = seg_id
        segments.append(dict(id=seg_id, category_id=label + 1,
                             iscrowd=int(k == n - 1 and thing)))
    present = set(np.unique(ids).tolist()) - {0}
    segments = [s for s in segments if s['id'] in present]
    # prediction: every segment shifted by a few pixels, 10% relabelled
    pred = np.full((h, w), NUM_THINGS + NUM_STUFF, np.int64)
    for s in segments:
        dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
        mask = np.roll(ids == s['id'], (dy, dx), axis=(0, 1))
        label = s['category_id'] - 1
        if rng.random() < 0.1:
            label = int(rng.integers(0, NUM_THINGS + NUM_STUFF))
        pred[mask] = label + (s['id'] * OFFSET if label < NUM_THINGS else 0)
    return ids, segments, pred


def make_data(args):
    rng = np.random.default_rng(args.seed)
    seg_dir = osp.join(args.work_dir, 'panoptic')
    os.makedirs(seg_dir, exist_ok=True)
    cats = [dict(id=i + 1, name=f'c{i}', isthing=int(i < NUM_THINGS))
            for i in range(NUM_THINGS + NUM_STUFF)]
    data = dict(images=[], annotations=[], categories=cats)
    preds = []
    for i in range(args.num_images):
        ids, segments, pred = _image(rng, args.height, args.width, args.segments)
        name = f'{i:06d}.png'
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        mmcv.imwrite(rgb[..., ::-1], osp.join(seg_dir, name))
        data['images'].append(dict(id=i, file_name=name, height=args.height,
                                   width=args.width))
        data['annotations'].append(dict(image_id=i, file_name=name, segments_info=segments))
        preds.append(pred)
    ann_file = osp.join(args.work_dir, 'panoptic.json')
    with open(ann_file, 'w') as f:
        json.dump(data, f)
    return ann_file, seg_dir, preds, [c['name'] for c in cats]


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    ann_file, seg_dir, preds, classes = make_data(args)
    made = time.perf_counter() - t0
    metric = PanopticQualityMetric(ann_file=ann_file, seg_prefix=seg_dir)
    metric.dataset_meta = dict(classes=classes)
    t0 = time.perf_counter()
    for i, pred in enumerate(preds):
        metric.process({}, [dict(img_id=i, img_path=f'{i:06d}.jpg',
                                 pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pred)[None]))])
    processed = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = metric.compute_metrics(metric.results)
    computed = time.perf_counter() - t0
    print(f'{args.num_images} images {args.width}x{args.height}, {args.segments} segments '
          f'each (data made in {made:.1f} s, not timed)')
    print(f'process (PNG reading, RLE): {processed:.1f} s '
          f'({processed / args.num_images * 1000:.1f} ms/image); '
          f'compute_metrics: {computed:.1f} s; total {processed + computed:.1f} s')
    print(', '.join(f'{k}={v:.2f}' for k, v in res.items()))
    return res


if __name__ == '__main__':
    main()
