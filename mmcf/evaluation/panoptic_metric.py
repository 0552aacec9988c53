"""COCO panoptic quality (PQ) exactly as the COCO reference computes it,
without panopticapi (not on PyPI).

The statistics are computed by ``hotcoco`` (pycocotools-compatible COCO
metrics in Rust, numpy its only dependency), whose panoptic evaluation gives
panopticapi's ``pq_compute`` numbers. This module turns the mmdet predictions
and the COCO panoptic ground truth into its in-memory input (one RLE mask per
segment, no temporary PNG), keeps one record per image in ``self.results``
(so mmengine's collection over ranks gives the same numbers as one process)
and reports the results the mmdet way.
"""
from __future__ import annotations

import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import join_path, load
from mmengine.logging import MMLogger, print_log
from pycocotools import mask as mask_util

from ..datasets.panoptic_io import read_panoptic_ids, segment_id_mismatch


def _encode(id_map: np.ndarray, ids: Sequence[int]) -> List[Tuple[dict, int]]:
    """RLE (pycocotools, counts as text) and area of ``id_map == i`` for each
    ``i`` in ``ids``, from one pass over the map: the column-major runs of
    equal ids are found once, and each id's runs become its RLE counts."""
    if not len(ids):
        return []
    h, w = id_map.shape
    flat = id_map.ravel(order='F')
    n = flat.size
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    ends = np.r_[starts[1:], n]
    values = flat[starts]
    order = np.argsort(values, kind='stable')  # runs grouped by id, in order
    sorted_values = values[order]
    out = []
    for i in ids:
        lo, hi = np.searchsorted(sorted_values, [i, i + 1])
        run = order[lo:hi]
        bounds = np.column_stack([starts[run], ends[run]]).ravel()
        counts = np.diff(np.r_[0, bounds, n])
        if len(counts) > 1 and counts[-1] == 0:
            counts = counts[:-1]  # no trailing empty run, as pycocotools writes it
        rle = mask_util.frPyObjects({'counts': counts.tolist(), 'size': [h, w]}, h, w)
        out.append(({'size': [h, w], 'counts': rle['counts'].decode('ascii')},
                    int((ends[run] - starts[run]).sum())))
    return out


@METRICS.register_module()
class PanopticQualityMetric(BaseMetric):
    """Panoptic quality (PQ, SQ, RQ) on COCO panoptic ground truth, as the
    COCO reference (panopticapi's ``pq_compute``) computes it.

    **The reference algorithm**, per image (id 0 of a PNG is VOID, unlabeled
    pixels; a ground-truth segment with ``iscrowd=1`` is a crowd region):

    1. For every pair of a ground-truth segment ``g`` and a predicted segment
       ``p`` count their common pixels ``|g ∩ p|``, and for every ``p`` its
       pixels on VOID, ``|p ∩ VOID|``.
    2. Matching: a pair is a true positive of its category when ``g`` is not
       crowd, ``g`` and ``p`` have the same category and ``IoU = |g ∩ p| /
       (|g| + |p| - |g ∩ p| - |p ∩ VOID|) > 0.5`` (the union leaves out only
       the prediction's VOID pixels). IoU above 0.5 makes a match unique; its
       IoU is added to the category's sum.
    3. False negatives: every unmatched non-crowd ground-truth segment.
       Crowd segments are never counted; the (last) crowd segment of each
       category is remembered.
    4. False positives: every unmatched prediction ``p`` of category ``c``,
       unless ``(|p ∩ VOID| + |p ∩ crowd_c|) / |p| > 0.5``, where
       ``crowd_c`` is the crowd region of ``c`` in this image: a prediction
       lying mostly on unlabeled pixels or on a crowd region of its own
       category is ignored. Crowd regions of other categories count as
       ordinary pixels.

    Over the data set the per-category sums are added, and for each category
    with ``tp + fp + fn > 0``: ``PQ = iou / (tp + fp/2 + fn/2)``, ``SQ = iou
    / tp`` (0 when ``tp = 0``), ``RQ = tp / (tp + fp/2 + fn/2)``; PQ, SQ and
    RQ are the means over those categories (all, things, stuff); a group with
    none reports 0 (panopticapi would divide by zero). The figures are those of ``hotcoco.panoptic``, which
    implements this reference; the tests check hand-computed cases of every
    rule above.

    Predictions are mmdet's ``pred_panoptic_seg``: ``label + k *
    INSTANCE_OFFSET`` per pixel (each distinct value one segment), with
    label ``num_classes`` (or the sample's ``ignore_index``) for unlabeled
    pixels, which belong to no segment.

    Refused with a ``ValueError`` naming the image (and the id or value): a
    prediction label outside ``0..num_classes``, a prediction of another size
    than its ground truth, a PNG id missing from its ``segments_info`` or a
    ``segments_info`` id absent from the PNG, a ground-truth segment whose
    ``category_id`` is not among the JSON's categories, a predicted class
    without a JSON category, and an image without annotation.

    Args:
        ann_file (str): COCO panoptic annotation JSON (``images``,
            ``annotations`` with ``file_name`` and ``segments_info``,
            ``categories`` with ``isthing``).
        seg_prefix (str): Folder of the ground-truth panoptic PNGs.
        classwise (bool): Whether to log a per-class table. Defaults to False.
        collect_device (str): 'cpu' or 'gpu', for collecting the results
            across ranks. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names; defaults to
            ``default_prefix`` ('coco_panoptic').
        backend_args (dict, optional): Arguments of the file backend used to
            read the JSON and the PNGs. Defaults to None.

    The class order is ``dataset_meta['classes']`` (the contiguous labels of
    the predictions); each JSON category is mapped to its label by name.
    Without ``dataset_meta``, the JSON categories in id order are used.

    Returned keys (percentages): ``PQ, SQ, RQ, PQ_th, SQ_th, RQ_th, PQ_st,
    SQ_st, RQ_st``.
    """
    default_prefix: Optional[str] = 'coco_panoptic'

    def __init__(self,
                 ann_file: str,
                 seg_prefix: str,
                 classwise: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = ann_file
        self.seg_prefix = seg_prefix
        self.classwise = classwise
        self.backend_args = backend_args

        data = load(ann_file, backend_args=backend_args)
        for key in ('annotations', 'categories'):
            if key not in data:
                raise ValueError(f'{ann_file} has no "{key}": not a COCO panoptic file')
        self._categories = sorted(data['categories'], key=lambda c: c['id'])
        self._category_ids = {c['id'] for c in self._categories}
        self._anns_by_img_id = {}
        self._anns_by_file = {}
        for ann in data['annotations']:
            self._anns_by_img_id[ann['image_id']] = ann
            self._anns_by_file[ann['file_name']] = ann
        self._setup_key = None

    # ------------------------------------------------------------------
    # class set-up
    # ------------------------------------------------------------------
    def _class_names(self) -> List[str]:
        meta = self.dataset_meta
        if meta is not None and meta.get('classes') is not None:
            return list(meta['classes'])
        return [c['name'] for c in self._categories]

    def _setup(self) -> None:
        """Map labels to JSON categories (lazily: ``dataset_meta`` is set by
        the runner after construction)."""
        classes = self._class_names()
        if self._setup_key == tuple(classes):
            return
        name_to_label = {name: i for i, name in enumerate(classes)}
        label_to_cat = {}
        for cat in self._categories:
            if cat['name'] not in name_to_label:
                raise ValueError(
                    f'category {cat["name"]!r} (id {cat["id"]}) of '
                    f'{self.ann_file} is not in the classes {classes}')
            label_to_cat[name_to_label[cat['name']]] = cat['id']
        self.num_classes = len(classes)
        self.classes = classes
        self._label_to_cat = label_to_cat
        self._setup_key = tuple(classes)

    # ------------------------------------------------------------------
    # ground truth
    # ------------------------------------------------------------------
    def _find_ann(self, data_sample: dict) -> dict:
        img_id = data_sample.get('img_id')
        if img_id in self._anns_by_img_id:
            return self._anns_by_img_id[img_id]
        img_path = data_sample.get('img_path')
        png = None
        if img_path is not None:
            png = osp.splitext(osp.basename(img_path))[0] + '.png'
            if png in self._anns_by_file:
                return self._anns_by_file[png]
        raise ValueError(
            f'no annotation in {self.ann_file} for image id {img_id!r} '
            f'(PNG file {png!r}, image {img_path!r})')

    def _gt_segments(self, ann: dict) -> Tuple[List[dict], Tuple[int, int], str]:
        """The image's ground-truth segments as COCO annotations (RLE), its
        (H, W) and the PNG path."""
        png_path = join_path(self.seg_prefix, ann['file_name'])
        ids = read_panoptic_ids(png_path, self.backend_args)
        segments = ann['segments_info']
        absent, unknown = segment_id_mismatch(ids, (seg['id'] for seg in segments))
        if absent:
            raise ValueError(
                f'segment id {absent[0]} of segments_info is absent from '
                f'the PNG {png_path}')
        if unknown:
            raise ValueError(
                f'PNG {png_path} has segment ids {unknown} with no entry in '
                f'segments_info of {self.ann_file}')
        for seg in segments:
            if seg['category_id'] not in self._category_ids:
                raise ValueError(
                    f'segment id {seg["id"]} of the PNG {png_path} has category_id '
                    f'{seg["category_id"]}, which is not among the categories of '
                    f'{self.ann_file}')
        encoded = _encode(ids, [seg['id'] for seg in segments])
        out = [dict(category_id=int(seg['category_id']), iscrowd=int(seg.get('iscrowd', 0)),
                    segmentation=rle, area=area)
               for seg, (rle, area) in zip(segments, encoded)]
        return out, ids.shape, png_path

    # ------------------------------------------------------------------
    # predictions
    # ------------------------------------------------------------------
    def _pred_segments(self, data_sample: dict, png_path: str,
                       shape: Tuple[int, int]) -> List[dict]:
        pan_seg = data_sample['pred_panoptic_seg']
        pan = pan_seg['sem_seg']
        if isinstance(pan, torch.Tensor):
            pan = pan.detach().cpu().numpy()
        pan = np.asarray(pan).astype(np.int64)
        if pan.ndim == 3:
            pan = pan[0]
        name = data_sample.get('img_path') or png_path
        if pan.shape != tuple(shape):
            raise ValueError(
                f'prediction of shape {pan.shape} for image {name!r} differs from '
                f'the PNG {png_path} of shape {tuple(shape)}')
        labels = pan % INSTANCE_OFFSET
        unlabeled = labels == self.num_classes
        ignore_index = pan_seg.get('ignore_index')
        if ignore_index is not None:
            unlabeled |= labels == int(ignore_index)
        bad = (~unlabeled) & ((pan < 0) | (labels > self.num_classes))
        if bad.any():
            raise ValueError(
                f'prediction for image {name!r} (PNG {png_path}) has labels '
                f'{sorted(np.unique(labels[bad]).tolist())} outside '
                f'0..{self.num_classes} ({self.num_classes} = unlabeled)')
        pan = np.where(unlabeled, -1, pan)
        values = [v for v in np.unique(pan).tolist() if v >= 0]
        for value in values:
            label = value % INSTANCE_OFFSET
            if label not in self._label_to_cat:
                raise ValueError(
                    f'prediction for image {name!r} has class {label} '
                    f'({self.classes[label]!r}), which has no category in {self.ann_file}')
        return [dict(category_id=self._label_to_cat[value % INSTANCE_OFFSET], iscrowd=0,
                     segmentation=rle, area=area, score=1.0)
                for value, (rle, area) in zip(values, _encode(pan, values))]

    # ------------------------------------------------------------------
    # BaseMetric API
    # ------------------------------------------------------------------
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        self._setup()
        for data_sample in data_samples:
            ann = self._find_ann(data_sample)
            gt, (h, w), png_path = self._gt_segments(ann)
            pred = self._pred_segments(data_sample, png_path, (h, w))
            self.results.append(dict(img_id=ann['image_id'], height=h, width=w,
                                     file_name=ann['file_name'], gt=gt, pred=pred))

    def evaluate_results(self, results: list) -> Tuple[Dict[str, dict], Dict[int, dict]]:
        """hotcoco's panoptic evaluation of the per-image records: the
        ``All``/``Things``/``Stuff`` groups and the per-category figures
        (category id -> pq, sq, rq, iou, tp, fp, fn; fractions)."""
        from hotcoco import panoptic
        images, gt_anns, pred_anns = [], [], []
        seen = set()
        for res in sorted(results, key=lambda r: r['img_id']):
            if res['img_id'] in seen:
                raise ValueError(f'image id {res["img_id"]} ({res["file_name"]}) was '
                                 'scored twice')
            seen.add(res['img_id'])
            images.append(dict(id=res['img_id'], height=res['height'], width=res['width'],
                               file_name=res['file_name']))
            for key, out in (('gt', gt_anns), ('pred', pred_anns)):
                for seg in res[key]:
                    out.append(dict(seg, id=len(out) + 1, image_id=res['img_id']))
        categories = [dict(id=c['id'], name=c['name'], isthing=int(c.get('isthing', 0)))
                      for c in self._categories]
        ev = panoptic.PanopticEval(
            dict(images=images, annotations=gt_anns, categories=categories),
            dict(images=images, annotations=pred_anns, categories=categories))
        ev.evaluate()
        out = ev.results()
        return {k: out[k] for k in ('All', 'Things', 'Stuff')}, out['per_class']

    def compute_metrics(self, results: list) -> Dict[str, float]:
        self._setup()
        groups, per_class = self.evaluate_results(results)
        metrics = OrderedDict()
        for suffix, group in (('', 'All'), ('_th', 'Things'), ('_st', 'Stuff')):
            for name in ('PQ', 'SQ', 'RQ'):
                # a group with no category seen: 0 (hotcoco says -1 for
                # "undefined"; panopticapi divides by zero)
                value = groups[group][name.lower()] if groups[group]['n'] else 0.0
                metrics[name + suffix] = float(value) * 100

        logger = MMLogger.get_current_instance()
        if self.classwise:
            lines = [f'{"class":<20} {"PQ":>7} {"SQ":>7} {"RQ":>7} '
                     f'{"TP":>5} {"FP":>5} {"FN":>5}']
            cat_to_label = {cat: label for label, cat in self._label_to_cat.items()}
            for cat in sorted(per_class, key=lambda c: cat_to_label.get(c, c)):
                f = per_class[cat]
                name = self.classes[cat_to_label[cat]] if cat in cat_to_label else cat
                lines.append(f'{str(name):<20} {f["pq"] * 100:7.2f} {f["sq"] * 100:7.2f} '
                             f'{f["rq"] * 100:7.2f} {f["tp"]:5d} {f["fp"]:5d} {f["fn"]:5d}')
            print_log('Per-class panoptic quality:\n' + '\n'.join(lines), logger=logger)
        print_log('Panoptic quality: ' + ', '.join(f'{k}={v:.2f}' for k, v in metrics.items()),
                  logger=logger)
        return dict(metrics)
