"""Panoptic inference of the ClusterFormer panoptic head, as a configurable
module (mmdet's ``panoptic_fusion_head``, cf. its ``MaskFormerFusionHead``)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.structures.mask import mask2bbox
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class ClusterFormerPanopticFusionHead(BaseModule):
    """Fuse the final thing and stuff centers of
    :class:`~mmcf.models.detection.ClusterFormerPanopticHead` into mmdet's
    outputs, per image (§4.1.5).

    Inputs per image: the thing centers' class probabilities ``(Q_th,
    N_th)``, the stuff centers' presence probabilities ``(N_st,)`` (stuff
    center ``j`` is stuff class ``j``) and every center's mask probabilities
    ``(Q_th + N_st, H, W)``, things first.

    * **Panoptic** (``panoptic_on``): a center is kept when its score (a
      thing center's best class probability, a stuff center's presence) is
      above ``object_mask_thr``; each pixel goes to the kept center with the
      largest score x mask probability; a center that keeps less than
      ``iou_thr`` of its own mask (probability >= 0.5) is dropped and its
      pixels become VOID. Stuff of one class is one segment (id = class),
      things get ``class + k * INSTANCE_OFFSET``, k = 1, 2, ...; VOID is
      ``num_things_classes + num_stuff_classes`` (mmdet's convention).
    * **Instances** (``instance_on``): the top ``max_per_img`` (thing center,
      class) pairs by class probability, with masks (probability >
      ``mask_thr``), mask boxes and score = class probability x mean mask
      probability inside the mask (Mask2Former), sorted by that score.
    * **Semantic** (``semantic_on``): per pixel ``argmax_c sum_k p_k(c)
      m_k`` (Mask2Former's semantic inference with both kinds of centers).

    Args:
        num_things_classes / num_stuff_classes: as the panoptic head.
        test_cfg: the keys above; the detector passes its ``test_cfg``.
    """

    DEFAULTS = dict(panoptic_on=True, semantic_on=True, instance_on=True, max_per_img=100,
                    object_mask_thr=0.5, iou_thr=0.8, mask_thr=0.5)

    def __init__(self, num_things_classes: int = 80, num_stuff_classes: int = 53,
                 test_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.test_cfg = ConfigDict({**self.DEFAULTS, **(test_cfg or {})})

    def predict(self, thing_probs: Tensor, stuff_probs: Tensor,
                mask_probs: Tensor) -> Dict[str, object]:
        """One image: ``pan_results`` (H, W) int32, ``ins_results``
        (InstanceData) and ``sem_results`` (H, W) long, as ``test_cfg``
        enables them."""
        res: Dict[str, object] = {}
        if self.test_cfg.panoptic_on:
            res['pan_results'] = self.panoptic_fusion(thing_probs, stuff_probs, mask_probs)
        if self.test_cfg.instance_on:
            res['ins_results'] = self.instance_results(thing_probs, mask_probs)
        if self.test_cfg.semantic_on:
            res['sem_results'] = self.semantic_results(thing_probs, stuff_probs, mask_probs)
        return res

    def _center_scores(self, thing_probs: Tensor, stuff_probs: Tensor
                       ) -> Tuple[Tensor, Tensor]:
        """Score and class of every center: thing centers their best thing
        class, stuff center j class ``num_things_classes + j``."""
        if self.num_things_classes:
            th_scores, th_labels = thing_probs.max(-1)
        else:
            th_scores = th_labels = thing_probs.new_zeros(thing_probs.shape[0])
        st_labels = torch.arange(self.num_stuff_classes, device=stuff_probs.device) + \
            self.num_things_classes
        return torch.cat([th_scores, stuff_probs]), torch.cat([th_labels.long(), st_labels])

    def panoptic_fusion(self, thing_probs: Tensor, stuff_probs: Tensor,
                        mask_probs: Tensor) -> Tensor:
        """(H, W) int32 panoptic map; each pixel gets at most one segment."""
        thr = self.test_cfg.object_mask_thr
        iou_thr = self.test_cfg.iou_thr
        scores, labels = self._center_scores(thing_probs, stuff_probs)
        H, W = mask_probs.shape[-2:]
        pan = torch.full((H, W), self.num_classes, dtype=torch.int32,
                         device=mask_probs.device)
        keep = torch.nonzero(scores > thr).squeeze(1)
        if keep.numel() == 0:
            return pan
        winner = (scores[keep, None, None] * mask_probs[keep]).argmax(0)
        instance = 1
        for i, k in enumerate(keep.tolist()):
            mine = winner == i
            area = int(mine.sum())
            own = int((mask_probs[k] >= 0.5).sum())
            if area == 0 or own == 0 or area / own < iou_thr:
                continue
            label = int(labels[k])
            if label >= self.num_things_classes:  # stuff: one segment per class
                pan[mine] = label
            else:
                pan[mine] = label + instance * INSTANCE_OFFSET
                instance += 1
        return pan

    def instance_results(self, thing_probs: Tensor, mask_probs: Tensor) -> InstanceData:
        """The top ``max_per_img`` (thing center, class) pairs, best first."""
        Q = thing_probs.shape[0]
        n = min(self.test_cfg.max_per_img, thing_probs.numel())
        cls_scores, index = thing_probs.flatten().topk(n)
        labels = index % max(self.num_things_classes, 1)
        query = torch.div(index, max(self.num_things_classes, 1), rounding_mode='floor')
        probs = mask_probs[:Q][query]
        masks = probs > self.test_cfg.mask_thr
        inside = (probs * masks).flatten(1).sum(1) / (masks.flatten(1).sum(1) + 1e-6)
        scores = cls_scores * inside
        order = scores.argsort(descending=True)
        return InstanceData(bboxes=mask2bbox(masks[order]).float(), labels=labels[order],
                            masks=masks[order], scores=scores[order])

    def semantic_results(self, thing_probs: Tensor, stuff_probs: Tensor,
                         mask_probs: Tensor) -> Tensor:
        """(H, W) class per pixel."""
        Q, C = thing_probs.shape[0], self.num_classes
        class_probs = thing_probs.new_zeros(Q + self.num_stuff_classes, C)
        class_probs[:Q, :self.num_things_classes] = thing_probs
        class_probs[Q:, self.num_things_classes:] = torch.diag(stuff_probs)
        return torch.einsum('kc,khw->chw', class_probs, mask_probs).argmax(0)
