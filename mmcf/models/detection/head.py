"""ClusterFormer head for object detection and instance segmentation in mmdet
(§3.3, §4.1.2, §4.1.4).

:class:`ClusterFormerDetHead` runs the decoder trunk every head shares
(pixel decoder, centers from the encoder's (Table 6f), six RCA decoder
layers; the pipeline is sketched in :mod:`mmcf.models.trunk`) with
``feat_pos`` (sine position and level embedding on the clustered tokens)
and predicts from every layer's centers ``C^l``::

    class logits = FFN_cls(LN_out(C^l))             # sigmoid, BCE (§4.1.2)
    boxes        = sigmoid(FFN_box(LN_out(C^l)) + logit(ref))   # (cx, cy, w, h) / image
    mask logits  = < MLP(LN_out(C^l)), F >          # dot product (§4.1.4)

Every layer's predictions (and the initial centers', ``supervise_initial``)
are matched to the ground truth with mmdet's ``HungarianAssigner`` and
supervised (auxiliary losses on every decoder layer).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.utils import multi_apply
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.structures.mask import mask2bbox
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from ..clustering import Mlp
from .boxes import cluster_boxes, mask_boxes
from .center_head import ClusterFormerCenterHead

BOX_REFS = ('mask', 'cluster', 'none')
BOX_SOURCES = ('regress', 'mask')


def _default_train_cfg(with_mask: bool) -> dict:
    """The match costs: focal class cost (x2) with, for the instance head,
    Mask2Former's mask costs (BCE x5, dice x5) and, for the detection-only
    head, §4.1.2's box costs (L1 x5, GIoU x2). With masks the boxes are left
    out of the matching (the measurement: docs/en/head_comparison.md)."""
    costs = [dict(type='FocalLossCost', weight=2.0)]
    if with_mask:
        costs += [
            dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
        ]
    else:
        costs += [
            dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0),
        ]
    return dict(assigner=dict(type='HungarianAssigner', match_costs=costs),
                num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75)


def default_loss_cls() -> dict:
    """§4.1.2's binary cross-entropy of the classes, in its focal form
    (DINO's, the detector Table 2 compares with): sigmoid BCE with the
    ``(1 - p_t)^2`` modulation and ``alpha = 0.25``, x2. Plain BCE
    (``CrossEntropyLoss(use_sigmoid=True)``) is the literal reading; the focal
    form trained better on the instance demo (docs/en/head_comparison.md)."""
    return dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0)


@MODELS.register_module()
class ClusterFormerDetHead(ClusterFormerCenterHead):
    """ClusterFormer detection / instance segmentation head (§3.3, §4.1.2,
    §4.1.4).

    **Trunk.** mmdet's ``MSDeformAttnPixelDecoder`` by default (as
    Mask2Former's; its maps at strides 32, 16, 8 are the ``I^l`` of Eq. 4,
    its stride-4 output the mask features ``F``; an FPN-style
    ``PixelDecoder`` also works, its output pooled to the ``I^l``), then ``transformer_decoder.num_layers`` (6)
    layers, each an RCA layer of Eq. 4 with T (3) EM iterations,
    self-attention among the instance centers and an FFN
    (:class:`~mmcf.models.trunk.ClusterDecoderTrunk`). With ``feat_pos``
    (default) the clustered tokens carry a sine position encoding plus a
    learned level embedding: Eq. 4 is silent on positions, but a box
    regressor needs to know where its cluster lies.

    **Instance centers.** ``num_queries`` (100, §4.1.2) centers, initialised
    by ``center_init`` (Table 6f, see :class:`~mmcf.models.decoder.
    CenterQueryInit`): ``'encoder'`` (default, the backbone's last-stage
    centers, which needs ``out_centers=True`` on the backbone), ``'free'``
    or ``'feature'``.

    **Predictions** from every layer's centers: class logits through a small
    FFN, trained with binary cross-entropy (sigmoid, no background class;
    §4.1.2) in its focal form by default (:func:`default_loss_cls`); boxes
    ``sigmoid(FFN(C))`` as (cx, cy, w, h) relative to the image,
    trained with L1 (x5) + GIoU (x2); with ``with_mask`` mask logits
    ``<MLP(C_k), F_p>`` trained with binary cross-entropy + dice (§4.1.4) on
    ``num_points`` points chosen by uncertainty (Mask2Former's point loss).
    ``with_mask=False`` is the detection-only head (§4.1.2): same decoder, no
    mask branch, no mask costs.

    **Box reference** (``box_ref``; §4.1.2 only says that boxes are
    regressed from the final centers with L1 + GIoU). Boxes are regressed as
    ``box = sigmoid(logit(ref) + FFN(C))`` relative to a reference box:

    * ``'mask'`` (default with the mask branch): the bounding box of the
      center's own predicted mask (``sigmoid > 0.5``, Mask2Former's
      mask-to-box), detached; the cluster reference when the mask is empty.
    * ``'cluster'`` (default without masks): the extent of the center's
      cluster, the spatial mean and spread of its assignment map ``M`` (Eq. 3,
      averaged over heads) in the layer's last E-step, ``ref = (mu_x, mu_y,
      sqrt(12) sigma_x, sqrt(12) sigma_y)``, the box of a uniform region
      with those moments.
    * ``'none'``: ``box = sigmoid(FFN(C))``, DETR's absolute regression.

    The initial centers have neither, and use ``'none'`` (absolute
    regression learns boxes far more slowly than masks: docs/en/detection.md).

    **Matching.** ``train_cfg.assigner`` (mmdet's ``HungarianAssigner``)
    with the match costs in the config (default: focal class cost with the
    mask costs for the instance head, with the box costs for the
    detection-only head); the mask costs read ``num_points`` random points
    of each mask.

    **Inference.** The top ``test_cfg.max_per_img`` (100) (query, class)
    pairs by sigmoid score; boxes in input-image pixels, divided by the
    ``scale_factor`` with ``rescale``; masks upsampled to the padded input,
    cropped to the image and resized to the original size. With masks the
    score is the class score times the mean mask probability inside the
    mask, as in Mask2Former. ``test_cfg.box_source`` chooses the output
    boxes: ``'mask'`` (default with masks), the tight box of each output
    mask, as Mask2Former's instance output; ``'regress'`` (default and only
    choice without masks), the box branch, which regresses from a stride-4
    mask box and does not reach the full-resolution mask's precision
    (measured: docs/en/head_comparison.md).

    Args:
        in_channels: channels of the four backbone maps.
        num_classes: number of (thing) classes.
        with_mask: predict instance masks (§4.1.4).
        box_ref: 'mask' | 'cluster' | 'none' (see above; default 'mask' with
            ``with_mask``, else 'cluster').
        loss_cls / loss_bbox / loss_iou: mmdet losses (``loss_cls`` default:
            :func:`default_loss_cls`).
        train_cfg: ``assigner`` and the point-loss settings ``num_points``,
            ``oversample_ratio``, ``importance_sample_ratio``; keys not given
            keep their defaults (match costs: focal class 2 with mask BCE 5
            + dice 5 with masks, with §4.1.2's L1 5 + GIoU 2 without; 12544
            points).
        test_cfg: ``max_per_img``, ``mask_thr`` and ``box_source``: the
            output boxes, ``'mask'`` (default with masks: the tight box of
            each output mask, as Mask2Former's instance output) or
            ``'regress'`` (the box branch; the default without masks).
        **kwargs: the arguments of
            :class:`~mmcf.models.detection.center_head.ClusterFormerCenterHead`
            (``feat_channels``, ``num_queries``, ``pixel_decoder``,
            ``transformer_decoder``, ``center_init``, ``encoder_channels``,
            ``num_encoder_centers``, ``feat_pos``, ``supervise_initial``,
            ``assign_prior``, ``loss_mask``, ``loss_dice``,
            ``record_assignments``, ``init_cfg``), as the panoptic head
            takes them.
    """
    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 with_mask: bool = True,
                 box_ref: Optional[str] = None,
                 loss_cls: Optional[dict] = None,
                 loss_bbox: Optional[dict] = None,
                 loss_iou: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 **kwargs):
        box_ref = box_ref or ('mask' if with_mask else 'cluster')
        if box_ref == 'mask' and not with_mask:
            raise ValueError("box_ref='mask' needs the mask branch (with_mask=True)")
        if box_ref not in BOX_REFS:
            raise ValueError(f'box_ref must be one of {BOX_REFS}, got {box_ref!r}')
        super().__init__(
            in_channels, num_classes, with_mask=with_mask,
            loss_cls=loss_cls or default_loss_cls(),
            train_cfg={**_default_train_cfg(with_mask), **(train_cfg or {})},
            test_cfg=test_cfg or dict(max_per_img=100, mask_thr=0.5), **kwargs)
        self.box_ref = box_ref
        self.reg_embed = Mlp(self.feat_channels, self.feat_channels, 4)
        self.loss_bbox = MODELS.build(loss_bbox or dict(type='L1Loss', loss_weight=5.0))
        self.loss_iou = MODELS.build(loss_iou or dict(type='GIoULoss', loss_weight=2.0))
        if not with_mask:
            mask_costs = [type(c).__name__ for c in self.assigner.match_costs
                          if type(c).__name__ in ('DiceCost', 'CrossEntropyLossCost')]
            if mask_costs:
                raise ValueError(f'with_mask=False but the assigner has mask costs '
                                 f'{mask_costs}: drop them from train_cfg.assigner')
        self._reset_parameters()

    # ------------------------------------------------------------------ init
    def _reset_parameters(self) -> None:
        """The trunk's init, and boxes starting at their reference
        (sigmoid(logit(ref) + 0))."""
        super()._reset_parameters()
        nn.init.zeros_(self.reg_embed.fc2.weight)
        nn.init.zeros_(self.reg_embed.fc2.bias)

    # --------------------------------------------------------------- forward
    def _forward_head(self, centers: Tensor, mask_feature: Tensor,
                      ref: Optional[Tensor] = None, extent: Optional[Tensor] = None
                      ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Class logits (B, K, C), boxes (B, K, 4) in normalised (cx, cy, w,
        h) (relative to a reference box when ``ref``, the cluster boxes, is
        given), mask logits (B, K, H/4, W/4) or None."""
        cls_scores, mask_preds, dec = self.class_and_masks(centers, mask_feature)
        if mask_preds is not None and self.box_ref == 'mask' and ref is not None:
            ref = mask_boxes(mask_preds.detach(), ref, extent)
        delta = self.reg_embed(dec)
        if ref is not None:
            # in float32: under bf16 autocast a reference of 1 - 1e-3 rounds to
            # 1.0 and its logit (and gradient) would be infinite
            delta = delta.float() + torch.logit(ref.float())
        return cls_scores, delta.sigmoid(), mask_preds

    @staticmethod
    def _extent(batch_data_samples: Optional[list], mask_feature: Tensor) -> Tensor:
        """(B, 2): padded input width / image width, and the same for
        heights (ones without metas: no padding)."""
        B = mask_feature.shape[0]
        out = mask_feature.new_ones(B, 2, dtype=torch.float32)
        for b, s in enumerate(batch_data_samples or []):
            meta = s.metainfo if hasattr(s, 'metainfo') else s
            if 'img_shape' in meta and 'batch_input_shape' in meta:
                (ih, iw), (ph, pw) = meta['img_shape'][:2], meta['batch_input_shape'][:2]
                out[b, 0], out[b, 1] = pw / iw, ph / ih
        return out

    @property
    def reads_assignment_maps(self) -> bool:
        """The box reference is made from the decoder's assignment maps."""
        return self.box_ref != 'none'

    def forward(self, x: Sequence[Tensor], batch_data_samples: Optional[list] = None
                ) -> Tuple[List[Tensor], List[Tensor], List[Optional[Tensor]]]:
        """Per supervised prediction (initial centers if
        ``supervise_initial``, then every decoder layer; the LAST is final):
        lists of class logits, boxes and mask logits."""
        out = self.decode(x)
        extent = self._extent(batch_data_samples, out.mask_feature)
        outs = []
        for i in self.supervised(out):
            ref, assign = None, out.assignments[i]
            if assign is not None and self.box_ref != 'none':
                ref = cluster_boxes(assign, out.shapes[i], extent)
            outs.append(self._forward_head(out.centers[i], out.mask_feature, ref, extent))
        cls_list, box_list, mask_list = (list(t) for t in zip(*outs))
        return cls_list, box_list, mask_list

    # ------------------------------------------------------------------ loss
    def loss(self, x: Sequence[Tensor], batch_data_samples: list) -> Dict[str, Tensor]:
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_list, box_list, mask_list = self(x, batch_data_samples)
        return self.loss_by_feat(cls_list, box_list, mask_list, batch_gt_instances,
                                 batch_img_metas)

    def loss_by_feat(self, all_cls_scores: List[Tensor], all_bbox_preds: List[Tensor],
                     all_mask_preds: List[Optional[Tensor]], batch_gt_instances: list,
                     batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Losses of every prediction; the last is named ``loss_*``, the
        others ``d{i}.loss_*`` (``d0`` the initial centers when supervised)."""
        gts = [self._prepare_gt(g, m) for g, m in zip(batch_gt_instances, batch_img_metas)]
        num = len(all_cls_scores)
        losses: Dict[str, Tensor] = {}
        for i in range(num):
            terms = self._loss_by_feat_single(all_cls_scores[i], all_bbox_preds[i],
                                              all_mask_preds[i], gts, batch_img_metas)
            prefix = '' if i == num - 1 else f'd{i}.'
            losses.update({prefix + k: v for k, v in terms.items()})
        return losses

    def _prepare_gt(self, gt: InstanceData, img_meta: dict) -> InstanceData:
        """Boxes and labels as tensors, masks as a bool tensor padded to the
        batch input size (the extent of the predicted masks)."""
        out = InstanceData(bboxes=gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor')
                           else gt.bboxes, labels=gt.labels)
        bad = (out.labels < 0) | (out.labels >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"{img_meta.get('img_path', 'an image')}: label {int(out.labels[bad][0])} "
                f'is out of range for num_classes={self.num_classes}')
        if self.with_mask:
            if 'masks' not in gt:
                raise ValueError('with_mask=True needs instance masks: load them with '
                                 "LoadAnnotations(with_mask=True) (image "
                                 f"{img_meta.get('img_path', '?')})")
            masks = gt.masks
            device = out.labels.device
            masks = masks.to_tensor(dtype=torch.bool, device=device) \
                if hasattr(masks, 'to_tensor') else masks.to(device=device, dtype=torch.bool)
            H, W = img_meta.get('batch_input_shape', masks.shape[-2:])
            h, w = masks.shape[-2:]
            if (h, w) != (H, W):
                masks = F.pad(masks, (0, max(W - w, 0), 0, max(H - h, 0)))[..., :H, :W]
            out.masks = masks
        return out

    def _loss_by_feat_single(self, cls_scores: Tensor, bbox_preds: Tensor,
                             mask_preds: Optional[Tensor], gts: List[InstanceData],
                             batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        B = cls_scores.shape[0]
        masks_in = [None] * B if mask_preds is None else list(mask_preds)
        (labels, label_weights, bbox_targets, bbox_weights, pos_inds_list,
         pos_gt_list) = multi_apply(self._get_targets_single, list(cls_scores),
                                    list(bbox_preds), masks_in, gts, batch_img_metas)
        labels = torch.cat(labels)
        label_weights = torch.cat(label_weights)
        bbox_targets = torch.cat(bbox_targets)
        bbox_weights = torch.cat(bbox_weights)

        num_pos = sum(len(p) for p in pos_inds_list)
        avg = reduce_mean(cls_scores.new_tensor([num_pos])).clamp(min=1).item()
        losses = dict(loss_cls=self.loss_cls(
            cls_scores.flatten(0, 1), labels, label_weights, avg_factor=avg))

        # boxes: L1 on normalised (cx, cy, w, h), GIoU on image pixels
        factors = torch.cat([
            bbox_preds.new_tensor([m['img_shape'][1], m['img_shape'][0]] * 2)
            .expand(bbox_preds.shape[1], 4) for m in batch_img_metas])
        preds = bbox_preds.flatten(0, 1)
        losses['loss_bbox'] = self.loss_bbox(preds, bbox_targets, bbox_weights,
                                             avg_factor=avg)
        losses['loss_iou'] = self.loss_iou(
            bbox_cxcywh_to_xyxy(preds) * factors, bbox_cxcywh_to_xyxy(bbox_targets) * factors,
            bbox_weights, avg_factor=avg)
        if mask_preds is not None:
            losses.update(self._mask_loss(mask_preds, pos_inds_list, pos_gt_list, gts))
        return losses

    def _get_targets_single(self, cls_score: Tensor, bbox_pred: Tensor,
                            mask_pred: Optional[Tensor], gt: InstanceData,
                            img_meta: dict) -> tuple:
        """Hungarian matching of one image's K predictions to its objects.

        Returns labels (K,) (``num_classes`` = no object), label weights,
        normalised (cx, cy, w, h) box targets and weights (K, 4), the matched
        query indices and their ground-truth indices.
        """
        K = cls_score.shape[0]
        img_h, img_w = img_meta['img_shape'][:2]
        factor = bbox_pred.new_tensor([img_w, img_h, img_w, img_h]).unsqueeze(0)
        pred = InstanceData(scores=cls_score.detach(),
                            bboxes=bbox_cxcywh_to_xyxy(bbox_pred.detach()) * factor)
        match_gt = InstanceData(labels=gt.labels, bboxes=gt.bboxes)
        pos_inds, pos_gt = self._hungarian_match(
            pred, match_gt, mask_pred, gt.masks if mask_pred is not None else None, img_meta)

        labels = cls_score.new_full((K, ), self.num_classes, dtype=torch.long)
        labels[pos_inds] = gt.labels[pos_gt]
        label_weights = cls_score.new_ones(K)
        # float32 whatever the autocast dtype of the predictions (bf16/fp16)
        bbox_targets = bbox_pred.new_zeros(K, 4, dtype=torch.float32)
        bbox_weights = bbox_pred.new_zeros(K, 4, dtype=torch.float32)
        bbox_weights[pos_inds] = 1.0
        bbox_targets[pos_inds] = bbox_xyxy_to_cxcywh(gt.bboxes[pos_gt] / factor)
        return labels, label_weights, bbox_targets, bbox_weights, pos_inds, pos_gt

    # ------------------------------------------------------------- predict
    def predict(self, x: Sequence[Tensor], batch_data_samples: list,
                rescale: bool = True) -> List[InstanceData]:
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_list, box_list, mask_list = self(x, batch_data_samples)
        return self.predict_by_feat(cls_list[-1], box_list[-1], mask_list[-1],
                                    batch_img_metas, rescale=rescale)

    def predict_by_feat(self, cls_scores: Tensor, bbox_preds: Tensor,
                        mask_preds: Optional[Tensor], batch_img_metas: List[dict],
                        rescale: bool = True) -> List[InstanceData]:
        if mask_preds is not None:
            H, W = batch_img_metas[0]['batch_input_shape']
            mask_preds = F.interpolate(mask_preds, size=(H, W), mode='bilinear',
                                       align_corners=False)
        return [
            self._predict_single(cls_scores[b], bbox_preds[b],
                                 None if mask_preds is None else mask_preds[b], meta,
                                 rescale)
            for b, meta in enumerate(batch_img_metas)
        ]

    def _predict_single(self, cls_score: Tensor, bbox_pred: Tensor,
                        mask_pred: Optional[Tensor], img_meta: dict,
                        rescale: bool) -> InstanceData:
        """Top-k (query, class) pairs of one image in ``DetDataSample``'s
        ``pred_instances`` format, sorted by score."""
        max_per_img = min(self.test_cfg.get('max_per_img', 100), cls_score.numel())
        scores, index = cls_score.sigmoid().flatten().topk(max_per_img)
        labels = index % self.num_classes
        query = torch.div(index, self.num_classes, rounding_mode='floor')
        img_h, img_w = img_meta['img_shape'][:2]
        boxes = bbox_cxcywh_to_xyxy(bbox_pred[query])
        boxes = boxes * boxes.new_tensor([img_w, img_h, img_w, img_h])
        boxes[:, 0::2].clamp_(min=0, max=img_w)
        boxes[:, 1::2].clamp_(min=0, max=img_h)
        out_h, out_w = img_h, img_w
        if rescale:
            scale = boxes.new_tensor(img_meta['scale_factor']).repeat(2)
            boxes = boxes / scale
            out_h, out_w = img_meta['ori_shape'][:2]
            boxes[:, 0::2].clamp_(min=0, max=out_w)
            boxes[:, 1::2].clamp_(min=0, max=out_h)
        result = InstanceData(bboxes=boxes, labels=labels)
        box_source = self.test_cfg.get('box_source',
                                       'regress' if mask_pred is None else 'mask')
        if box_source not in BOX_SOURCES:
            raise ValueError(f'test_cfg.box_source must be one of {BOX_SOURCES}, got '
                             f'{box_source!r}')
        if box_source == 'mask' and mask_pred is None:
            raise ValueError("test_cfg.box_source='mask' needs the mask branch "
                             '(with_mask=True)')
        if mask_pred is not None:
            logits = mask_pred[query][:, :img_h, :img_w]
            if rescale and (out_h, out_w) != (img_h, img_w):
                logits = F.interpolate(logits.unsqueeze(0), size=(out_h, out_w),
                                       mode='bilinear', align_corners=False).squeeze(0)
            probs = logits.sigmoid()
            masks = probs > self.test_cfg.get('mask_thr', 0.5)
            inside = (probs * masks).flatten(1).sum(1) / (masks.flatten(1).sum(1) + 1e-6)
            scores = scores * inside
            result.masks = masks
            if box_source == 'mask':
                # Mask2Former's boxes: the tight box of each output mask
                result.bboxes = mask2bbox(masks).to(boxes.dtype)
        result.scores = scores
        # best first: the mask factor reorders the top-k by class score
        return result[scores.argsort(descending=True)]
