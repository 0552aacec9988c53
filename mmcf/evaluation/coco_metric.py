"""mmdet's COCO detection metric with hotcoco as an evaluation backend."""
from __future__ import annotations

import contextlib
from typing import Iterator

from mmdet.evaluation.metrics import CocoMetric
from mmdet.evaluation.metrics import coco_metric as _mmdet_coco_metric
from mmdet.registry import METRICS

BACKENDS = ('hotcoco', 'pycocotools')


def _hotcoco_eval(coco_gt, coco_dt, iou_type: str):
    """A hotcoco ``COCOeval`` for pycocotools' ground truth and detections."""
    import hotcoco
    gt = hotcoco.COCO(coco_gt.dataset)
    dt = gt.load_res(coco_dt.dataset['annotations'])
    return hotcoco.COCOeval(gt, dt, iou_type)


@contextlib.contextmanager
def _evaluating_with_hotcoco() -> Iterator[None]:
    real = _mmdet_coco_metric.COCOeval
    _mmdet_coco_metric.COCOeval = _hotcoco_eval
    try:
        yield
    finally:
        _mmdet_coco_metric.COCOeval = real


@METRICS.register_module()
class FastCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` (every option, every output key: ``coco/bbox_mAP``,
    ``coco/segm_mAP_50``, ...) with the evaluation engine as an option.

    ``backend='hotcoco'`` (default) runs the AP/AR matching and accumulation
    in hotcoco (Rust), which gives pycocotools' numbers to the last digit
    (checked on the detection demo, bbox and segm, and in
    ``tests/evaluation/test_coco_metric.py``) about 15x faster;
    ``'pycocotools'`` is mmdet's own path. ``use_mp_eval=True`` keeps mmdet's
    multi-process pycocotools evaluation.

    Use it where a config has ``type='CocoMetric'``::

        val_evaluator = dict(type='FastCocoMetric', ann_file=..., metric=['bbox', 'segm'])
    """

    def __init__(self, *args, backend: str = 'hotcoco', **kwargs) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        super().__init__(*args, **kwargs)
        self.backend = backend

    def compute_metrics(self, results: list):
        if self.backend == 'pycocotools' or self.use_mp_eval:
            return super().compute_metrics(results)
        with _evaluating_with_hotcoco():
            return super().compute_metrics(results)
