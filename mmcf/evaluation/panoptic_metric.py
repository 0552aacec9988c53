"""COCO panoptic quality (PQ) without panopticapi.

The per-image matching statistics come from torchmetrics'
:class:`torchmetrics.detection.PanopticQuality`; this module only turns the
mmdet predictions and the COCO panoptic ground truth into its input format,
keeps the per-image, per-class statistics in ``self.results`` (so mmengine's
distributed collection works) and averages them the way panopticapi does.
"""
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

from ..datasets.panoptic_io import read_panoptic_ids, segment_id_mismatch

_STAT_KEYS = ('iou_sum', 'true_positives', 'false_positives',
              'false_negatives')


@METRICS.register_module()
class PanopticQualityMetric(BaseMetric):
    """Panoptic quality (PQ, SQ, RQ) on COCO panoptic ground truth.

    For every image, torchmetrics' ``PanopticQuality`` is updated once and its
    per-category states ``iou_sum``, ``true_positives``, ``false_positives``
    and ``false_negatives`` are stored, then it is reset. ``compute_metrics``
    sums the statistics over the images and, as panopticapi does, computes for
    each class ``PQ_c = iou_sum / (tp + fp/2 + fn/2)``, ``SQ_c = iou_sum / tp``
    (0 when ``tp == 0``) and ``RQ_c = tp / (tp + fp/2 + fn/2)``, and averages
    them over the classes with ``tp + fp + fn > 0`` (all, things, stuff). An
    empty group (e.g. no stuff class seen at all) averages to 0, as in
    panopticapi.

    Void handling: torchmetrics uses one void colour for predictions and
    targets and does not count a target segment as a false negative when more
    than half of it is predicted void; panopticapi does count it. Unlabeled
    prediction pixels (label ``num_classes`` or the sample's ``ignore_index``)
    are therefore given an extra dummy *stuff* category whose statistics are
    dropped, so a prediction is never void. Target pixels with PNG id 0,
    pixels of crowd segments (``iscrowd=1``) and segments whose category is
    not in the JSON are void in the target.

    Known differences to panopticapi:

    * crowd regions are treated as void of any category: a predicted segment
      that lies for more than half on crowd (or id 0) pixels of *any*
      category is not a false positive, while panopticapi only ignores it
      over crowd regions of the *same* category;
    * for matched pairs, the union leaves out the prediction's overlap with
      all target void, crowd regions included (panopticapi only leaves out
      the overlap with id 0).

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
        self._categories = sorted(data['categories'], key=lambda c: c['id'])
        self._anns_by_img_id = {}
        self._anns_by_file = {}
        for ann in data['annotations']:
            self._anns_by_img_id[ann['image_id']] = ann
            self._anns_by_file[ann['file_name']] = ann
        self._setup_key = None
        self._pq = None

    # ------------------------------------------------------------------
    # class set-up
    # ------------------------------------------------------------------
    def _class_names(self) -> List[str]:
        meta = self.dataset_meta
        if meta is not None and meta.get('classes') is not None:
            return list(meta['classes'])
        return [c['name'] for c in self._categories]

    def _setup(self) -> None:
        """Build the category maps and the torchmetrics instance (lazily:
        ``dataset_meta`` is set by the runner after construction)."""
        classes = self._class_names()
        if self._setup_key == tuple(classes):
            return
        from torchmetrics.detection import PanopticQuality

        name_to_label = {name: i for i, name in enumerate(classes)}
        cat_to_label = {}
        things = set()
        for cat in self._categories:
            if cat['name'] not in name_to_label:
                raise ValueError(
                    f'category {cat["name"]!r} (id {cat["id"]}) of '
                    f'{self.ann_file} is not in the classes {classes}')
            label = name_to_label[cat['name']]
            cat_to_label[cat['id']] = label
            if cat.get('isthing', 0):
                things.add(label)
        num_classes = len(classes)
        # labels without a JSON category count as stuff; they only get FPs
        stuffs = set(range(num_classes)) - things
        self.num_classes = num_classes
        self.classes = classes
        self._cat_to_label = cat_to_label
        self._things = sorted(things)
        self._stuffs = sorted(stuffs)
        # num_classes (mmdet's VOID label) is the dummy stuff category of
        # the unlabeled prediction pixels
        self._dummy = num_classes
        self._pq = PanopticQuality(
            things=set(self._things),
            stuffs=set(self._stuffs) | {self._dummy},
            allow_unknown_preds_category=False)
        # torchmetrics orders its states things sorted, then stuffs sorted
        # (``_get_category_id_to_continuous_id``); position of each label:
        order = self._things + self._stuffs + [self._dummy]
        cont = {cat: i for i, cat in enumerate(order)}
        self._label_to_cont = np.array(
            [cont[label] for label in range(num_classes)], dtype=np.int64)
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

    def _load_target(self, ann: dict) -> Tuple[np.ndarray, str]:
        """(H, W, 2) array of (label, instance), void is label -1, and the
        path of the PNG."""
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

        target = np.full(ids.shape + (2, ), -1, dtype=np.int64)
        target[..., 1] = 0
        for index, seg in enumerate(segments):
            label = self._cat_to_label.get(seg['category_id'])
            if seg.get('iscrowd', 0) or label is None:
                continue  # void in the target
            mask = ids == seg['id']
            target[mask, 0] = label
            target[mask, 1] = index + 1
        return target, png_path

    # ------------------------------------------------------------------
    # predictions
    # ------------------------------------------------------------------
    def _convert_pred(self, data_sample: dict, png_path: str,
                      shape: tuple) -> np.ndarray:
        pan_seg = data_sample['pred_panoptic_seg']
        pan = pan_seg['sem_seg']
        if isinstance(pan, torch.Tensor):
            pan = pan.detach().cpu().numpy()
        pan = np.asarray(pan).astype(np.int64)
        if pan.ndim == 3:
            pan = pan[0]
        if pan.shape != tuple(shape):
            raise ValueError(
                f'prediction of shape {pan.shape} for image '
                f'{data_sample.get("img_path")!r} differs from the PNG '
                f'{png_path} of shape {tuple(shape)}')
        labels = pan % INSTANCE_OFFSET
        instances = pan // INSTANCE_OFFSET
        unlabeled = labels == self.num_classes
        ignore_index = pan_seg.get('ignore_index')
        if ignore_index is not None:
            unlabeled |= labels == int(ignore_index)
        bad = (~unlabeled) & ((labels < 0) | (labels > self.num_classes))
        if bad.any():
            raise ValueError(
                f'prediction for the PNG {png_path} has labels '
                f'{sorted(np.unique(labels[bad]).tolist())} outside '
                f'0..{self.num_classes} ({self.num_classes} = unlabeled)')
        labels = np.where(unlabeled, self._dummy, labels)
        instances = np.where(unlabeled, 0, instances)
        return np.stack([labels, instances], axis=-1)

    # ------------------------------------------------------------------
    # BaseMetric API
    # ------------------------------------------------------------------
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        self._setup()
        for data_sample in data_samples:
            ann = self._find_ann(data_sample)
            target, png_path = self._load_target(ann)
            pred = self._convert_pred(data_sample, png_path,
                                      target.shape[:2])
            self._pq.update(
                torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
            result = {'img_id': ann['image_id']}
            for key in _STAT_KEYS:
                state = getattr(self._pq, key).detach().cpu().numpy()
                # label order, dummy dropped
                result[key] = state[self._label_to_cont].copy()
            result['iou_sum'] = result['iou_sum'].astype(np.float64)
            for key in _STAT_KEYS[1:]:
                result[key] = result[key].astype(np.int64)
            self._pq.reset()
            self.results.append(result)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        self._setup()
        num_classes = self.num_classes
        iou = np.zeros(num_classes, dtype=np.float64)
        tp = np.zeros(num_classes, dtype=np.int64)
        fp = np.zeros(num_classes, dtype=np.int64)
        fn = np.zeros(num_classes, dtype=np.int64)
        for res in results:
            iou += res['iou_sum']
            tp += res['true_positives']
            fp += res['false_positives']
            fn += res['false_negatives']

        denom = tp + 0.5 * fp + 0.5 * fn
        present = (tp + fp + fn) > 0
        safe = np.where(denom > 0, denom, 1.0)
        pq = np.where(present, iou / safe, 0.0)
        sq = np.where(tp > 0, iou / np.maximum(tp, 1), 0.0)
        rq = np.where(present, tp / safe, 0.0)

        is_thing = np.zeros(num_classes, dtype=bool)
        is_thing[self._things] = True
        groups = (('', np.ones(num_classes, dtype=bool)), ('_th', is_thing),
                  ('_st', ~is_thing))
        metrics = OrderedDict()
        for suffix, sel in groups:
            keep = sel & present
            for name, values in (('PQ', pq), ('SQ', sq), ('RQ', rq)):
                # panopticapi: an empty group averages to 0
                value = float(values[keep].mean()) * 100 if keep.any() else 0.
                metrics[name + suffix] = value

        logger = MMLogger.get_current_instance()
        if self.classwise:
            lines = [f'{"class":<20} {"PQ":>7} {"SQ":>7} {"RQ":>7} '
                     f'{"TP":>5} {"FP":>5} {"FN":>5}']
            for i, name in enumerate(self.classes):
                lines.append(
                    f'{str(name):<20} {pq[i] * 100:7.2f} {sq[i] * 100:7.2f} '
                    f'{rq[i] * 100:7.2f} {tp[i]:5d} {fp[i]:5d} {fn[i]:5d}')
            print_log('Per-class panoptic quality:\n' + '\n'.join(lines),
                      logger=logger)
        print_log(
            'Panoptic quality: ' + ', '.join(f'{k}={v:.2f}'
                                             for k, v in metrics.items()),
            logger=logger)
        return dict(metrics)
