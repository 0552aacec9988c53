"""ClusterFormer head for panoptic segmentation in mmdet (§4.1.5).

The trunk is the one the detection head has too
(:class:`~mmcf.models.detection.center_head.ClusterFormerCenterHead`: pixel
decoder, six RCA decoder layers, centers started from the encoder's, Table
6f), run over two kinds of centers::

    C = [ thing centers 1..Q_th | stuff centers 1..N_st ]

* a *thing center* predicts one object: its class among the thing classes
  and its mask; thing centers are matched to the objects with mmdet's
  ``HungarianAssigner``;
* *stuff center* ``j`` stands for stuff class ``j``: its class score says
  whether the class is present, its mask where.

Loss (Eq. 7)::

    L = lambda_th L_th + lambda_st L_st + lambda_aux L_aux      (5, 3, 1)

``L_th`` and ``L_st``: binary cross-entropy of the class scores (the final
centers through a small FFN, §4.1.5) plus binary cross-entropy + dice of the
masks of the matched thing centers, resp. present stuff classes. ``L_aux``:
the weighted MaX-DeepLab / kMaX-DeepLab terms of
:mod:`~mmcf.models.detection.panoptic_losses`, each named and switchable.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from .center_head import ClusterFormerCenterHead
from .panoptic_fusion import ClusterFormerPanopticFusionHead
from .panoptic_losses import (instance_discrimination_loss, mask_id_cross_entropy,
                              pq_style_loss, semantic_cross_entropy)

#: MaX-DeepLab's weights of the four auxiliary terms (L_aux of Eq. 7)
AUX_LOSS_DEFAULTS = dict(
    pq=dict(weight=3.0, alpha=0.75),
    mask_id=dict(weight=0.3),
    inst_disc=dict(weight=1.0, temperature=0.3, num_points=4096),
    semantic=dict(weight=1.0),
)


def _panoptic_train_cfg() -> dict:
    return dict(
        assigner=dict(type='HungarianAssigner', match_costs=[
            dict(type='FocalLossCost', weight=2.0),
            dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
        ]),
        num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75)


def _panoptic_test_cfg() -> dict:
    return dict(ClusterFormerPanopticFusionHead.DEFAULTS)


def _aux_config(aux_losses: Optional[dict]) -> Dict[str, dict]:
    """Defaults merged with the config's ``aux_losses``; a term set to None
    or with weight 0 is off."""
    cfg = copy.deepcopy(AUX_LOSS_DEFAULTS)
    for name, value in (aux_losses or {}).items():
        if name not in cfg:
            raise ValueError(f'aux_losses: unknown term {name!r}; the terms are '
                             f'{sorted(AUX_LOSS_DEFAULTS)}')
        if value is None:
            cfg[name] = None
            continue
        unknown = set(value) - set(AUX_LOSS_DEFAULTS[name])
        if unknown:
            raise ValueError(f'aux_losses.{name}: unknown option(s) {sorted(unknown)}; '
                             f'it takes {sorted(AUX_LOSS_DEFAULTS[name])}')
        cfg[name].update(value)
    return {k: v for k, v in cfg.items() if v is not None and v['weight'] != 0}


@MODELS.register_module()
class ClusterFormerPanopticHead(ClusterFormerCenterHead):
    """ClusterFormer panoptic segmentation head (§4.1.5).

    The decoder, pixel decoder, center initialisation and assignment-map
    recording are the shared trunk's (:class:`ClusterFormerCenterHead`);
    there is no box branch (Eq. 7 has no box term; the instance output's
    boxes are the masks' bounding boxes).

    **Centers.** ``num_queries`` thing centers (100, §4.1.2) and one stuff
    center per stuff class, all initialised by ``center_init`` (Table 6f)
    and decoded together (self-attention sees both kinds). The paper says
    only "thing and stuff"; one center per stuff class (as K-Net and
    Panoptic FCN do) is our reading: a stuff region needs no matching, and
    thing and stuff predictions stay apart by construction.

    **Classes** (§4.1.5: "the final centers are input into a small FFN for
    semantic classification, trained using a binary cross-entropy loss"):
    one FFN gives ``num_things_classes + num_stuff_classes`` logits per
    center; a thing center uses the thing columns (sigmoid, no background
    class), stuff center ``j`` its own column ``num_things_classes + j``,
    read as "class j is present".

    **Loss** (Eq. 7), for the final centers and, as auxiliary losses, every
    decoder layer's (``d{i}.`` prefix) and the initial centers'
    (``supervise_initial``):

    * ``loss_th_cls``, ``loss_th_mask``, ``loss_th_dice`` (x ``lambda_th``
      = 5): ``loss_cls`` over the thing centers (targets from the Hungarian
      matching, averaged over the matched objects), ``loss_mask`` +
      ``loss_dice`` on points of the matched masks (Mask2Former's point
      loss, ``train_cfg.num_points``);
    * ``loss_st_cls``, ``loss_st_mask``, ``loss_st_dice`` (x ``lambda_st``
      = 3): presence of each stuff class, and the masks of the present ones;
    * ``loss_aux_<term>`` (x ``lambda_aux`` = 1 x the term's weight), the
      terms of ``aux_losses`` (defaults :data:`AUX_LOSS_DEFAULTS`,
      MaX-DeepLab's weights; ``None`` or ``weight=0`` switches a term off):

      - ``pq`` (3.0): PQ-style loss over the matched centers' mask-ID
        probabilities and class probabilities, every layer;
      - ``mask_id`` (0.3): mask-ID cross-entropy, every layer;
      - ``inst_disc`` (1.0): instance discrimination on the mask features
        F, once (it does not depend on the layer);
      - ``semantic`` (1.0): cross-entropy of a 1x1 convolution of F against
        the semantic map (things and stuff), once.

    **Inference.** :meth:`predict` returns the final centers' class and
    mask probabilities; the detector's ``panoptic_fusion_head``
    (:class:`~mmcf.models.detection.ClusterFormerPanopticFusionHead` by
    default) fuses them into ``pred_panoptic_seg``, ``pred_instances`` and
    ``pred_sem_seg`` as its ``test_cfg`` says.

    Args:
        in_channels: channels of the four backbone maps.
        num_things_classes / num_stuff_classes: 80 / 53 for COCO Panoptic;
            labels ``0..Nth-1`` are things, ``Nth..Nth+Nst-1`` stuff (mmdet's
            ``CocoPanopticDataset`` order).
        num_queries: number of thing centers (the stuff centers come on top).
        lambda_th, lambda_st, lambda_aux: the weights of Eq. 7.
        aux_losses: the auxiliary terms (see above).
        loss_cls, loss_mask, loss_dice: mmdet losses inside ``L_th`` and
            ``L_st`` (weight 1 each by default; the lambdas weigh them).
        train_cfg: the thing assigner and the point-loss settings; keys not
            given keep their defaults.
        test_cfg: the fusion settings (see
            :class:`~mmcf.models.detection.ClusterFormerPanopticFusionHead`);
            the detector's ``test_cfg`` replaces it, as in mmdet.
        **kwargs: the arguments of
            :class:`~mmcf.models.detection.center_head.ClusterFormerCenterHead`
            (``feat_channels``, ``pixel_decoder``, ``transformer_decoder``,
            ``center_init``, ...), as the detection head takes them.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 num_queries: int = 100,
                 lambda_th: float = 5.0,
                 lambda_st: float = 3.0,
                 lambda_aux: float = 1.0,
                 aux_losses: Optional[dict] = None,
                 loss_cls: Optional[dict] = None,
                 loss_mask: Optional[dict] = None,
                 loss_dice: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 **kwargs):
        for key in ('num_classes', 'with_mask', 'box_ref', 'loss_bbox', 'loss_iou'):
            if key in kwargs:
                raise TypeError(f'ClusterFormerPanopticHead does not take {key!r}: the '
                                'classes are num_things_classes + num_stuff_classes, '
                                'and it predicts masks and no boxes')
        if num_things_classes < 0 or num_stuff_classes < 0 or \
                num_things_classes + num_stuff_classes == 0:
            raise ValueError('need num_things_classes >= 0, num_stuff_classes >= 0 and '
                             f'at least one class, got {num_things_classes} and '
                             f'{num_stuff_classes}')
        aux = _aux_config(aux_losses)
        super().__init__(
            in_channels,
            num_classes=num_things_classes + num_stuff_classes,
            num_queries=num_queries + num_stuff_classes,
            with_mask=True,
            loss_cls=loss_cls or dict(type='CrossEntropyLoss', use_sigmoid=True,
                                      loss_weight=1.0),
            loss_mask=loss_mask or dict(type='CrossEntropyLoss', use_sigmoid=True,
                                        reduction='mean', loss_weight=1.0),
            loss_dice=loss_dice or dict(type='DiceLoss', use_sigmoid=True, activate=True,
                                        reduction='mean', naive_dice=True, eps=1.0,
                                        loss_weight=1.0),
            train_cfg={**_panoptic_train_cfg(), **(train_cfg or {})},
            test_cfg=test_cfg or _panoptic_test_cfg(),
            **kwargs)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_thing_queries = num_queries
        self.lambda_th, self.lambda_st, self.lambda_aux = lambda_th, lambda_st, lambda_aux
        self.aux_losses = aux
        if 'semantic' in aux:
            self.sem_embed = nn.Conv2d(self.feat_channels, self.num_classes, 1)
        self._reset_parameters()

    # --------------------------------------------------------------- forward
    def forward(self, x: Sequence[Tensor], batch_data_samples: Optional[list] = None
                ) -> Tuple[List[Tensor], List[Tensor], Tensor]:
        """Class logits (B, K, C) and mask logits (B, K, H/4, W/4) of every
        supervised prediction (the last is final; K = thing + stuff centers),
        and the mask features F (B, D, H/4, W/4)."""
        out = self.decode(x)
        feature = out.mask_feature
        cls_list, mask_list = [], []
        for i in self.supervised(out):
            cls, masks, _ = self.class_and_masks(out.centers[i], feature)
            cls_list.append(cls)
            mask_list.append(masks)
        return cls_list, mask_list, feature

    def _split(self, cls: Tensor) -> Tuple[Tensor, Tensor]:
        """Thing logits (B, Q_th, N_th) and stuff presence logits (B, N_st)."""
        Q, Nth = self.num_thing_queries, self.num_things_classes
        thing = cls[:, :Q, :Nth]
        stuff = cls[:, Q:, Nth:].diagonal(dim1=1, dim2=2)
        return thing, stuff

    # ------------------------------------------------------------------ loss
    def loss(self, x: Sequence[Tensor], batch_data_samples: list) -> Dict[str, Tensor]:
        metas = [s.metainfo for s in batch_data_samples]
        cls_list, mask_list, feature = self(x, batch_data_samples)
        hw = feature.shape[-2:]
        targets = [self._prepare_panoptic_gt(s, hw) for s in batch_data_samples]
        losses: Dict[str, Tensor] = {}
        num = len(cls_list)
        for i, (cls, masks) in enumerate(zip(cls_list, mask_list)):
            prefix = '' if i == num - 1 else f'd{i}.'
            terms = self._loss_single(cls, masks, targets, metas)
            losses.update({prefix + k: v for k, v in terms.items()})
        losses.update(self._pixel_losses(feature, targets))
        return losses

    def _prepare_panoptic_gt(self, sample, hw: Tuple[int, int]) -> dict:
        """One image's targets: thing labels and masks (from
        ``gt_instances``), stuff class indices and masks (from
        ``gt_sem_seg``, mmdet's ``preprocess_panoptic_gt`` split), all at the
        batch input size, and at the mask resolution ``hw``: the segment
        index map (things first, then stuff; -1 void) and the semantic map."""
        meta = sample.metainfo
        name = meta.get('img_path', 'an image')
        H, W = meta.get('batch_input_shape', meta.get('img_shape'))[:2]
        if 'gt_sem_seg' not in sample:
            raise ValueError(f'{name}: the panoptic head needs gt_sem_seg (stuff and the '
                             'semantic loss): load it with LoadCocoPanopticAnnotations('
                             'with_seg=True) and pad it (pad_seg=True)')
        gt = sample.gt_instances
        labels = gt.labels
        device = labels.device
        bad = (labels < 0) | (labels >= self.num_things_classes)
        if bad.any():
            raise ValueError(f'{name}: thing label {int(labels[bad][0])} is out of range '
                             f'for num_things_classes={self.num_things_classes}')
        if len(labels) and 'masks' not in gt:
            raise ValueError(f'{name}: the panoptic head needs the thing masks: '
                             'LoadCocoPanopticAnnotations(with_mask=True)')
        masks = gt.masks if len(labels) else torch.zeros(0, H, W, dtype=torch.bool)
        masks = masks.to_tensor(dtype=torch.bool, device=device) \
            if hasattr(masks, 'to_tensor') else masks.to(device=device, dtype=torch.bool)
        sem = sample.gt_sem_seg.sem_seg.squeeze(0).to(device).long()
        masks, sem = self._pad(masks, (H, W), 0), self._pad(sem[None], (H, W), 255)[0]

        stuff_classes = [c for c in torch.unique(sem).tolist()
                         if self.num_things_classes <= c < self.num_classes]
        stuff_index = torch.tensor(stuff_classes, dtype=torch.long,
                                   device=device) - self.num_things_classes
        stuff_masks = torch.stack([sem == c for c in stuff_classes]) if stuff_classes \
            else masks.new_zeros((0, H, W))
        segments = torch.cat([masks, stuff_masks]).float()
        small = F.interpolate(segments[None], size=hw, mode='nearest')[0] > 0.5 \
            if len(segments) else segments.new_zeros((0, ) + tuple(hw), dtype=torch.bool)
        seg_map = torch.full(tuple(hw), -1, dtype=torch.long, device=device)
        for k in range(len(small)):
            seg_map[small[k]] = k
        sem_small = F.interpolate(sem[None, None].float(), size=hw, mode='nearest')[0, 0]
        return dict(things=InstanceData(labels=labels, masks=masks),
                    stuff=InstanceData(labels=stuff_index, masks=stuff_masks),
                    small=small, seg_map=seg_map, sem=sem_small.long(),
                    name=name)

    @staticmethod
    def _pad(t: Tensor, size: Tuple[int, int], value: int) -> Tensor:
        H, W = size
        h, w = t.shape[-2:]
        if (h, w) == (H, W):
            return t
        t = F.pad(t, (0, max(W - w, 0), 0, max(H - h, 0)), value=value)
        return t[..., :H, :W]

    def _match_things(self, logits: Tensor, masks: Tensor, things: InstanceData,
                      meta: dict) -> Tuple[Tensor, Tensor]:
        """Hungarian matching of one image's thing centers to its objects
        (class and mask costs): the matched center indices and their object
        indices."""
        return self._hungarian_match(InstanceData(scores=logits.detach()),
                                     InstanceData(labels=things.labels), masks,
                                     things.masks, meta)

    def _loss_single(self, cls: Tensor, masks: Tensor, targets: List[dict],
                     metas: List[dict]) -> Dict[str, Tensor]:
        """Eq. 7's ``L_th``, ``L_st`` and the layer-wise auxiliary terms of
        one prediction (class logits (B, K, C), mask logits (B, K, h, w))."""
        Q, Nth = self.num_thing_queries, self.num_things_classes
        B = cls.shape[0]
        th_logits, st_logits = self._split(cls)
        th_masks, st_masks = masks[:, :Q], masks[:, Q:]
        matches = [self._match_things(th_logits[b], th_masks[b], t['things'], metas[b])
                   for b, t in enumerate(targets)]

        # L_th: classes of the thing centers (no-object = all zero), masks
        labels = cls.new_full((B, Q), Nth, dtype=torch.long)
        for b, (pos, gt_idx) in enumerate(matches):
            labels[b, pos] = targets[b]['things'].labels[gt_idx]
        num_th = reduce_mean(cls.new_tensor([sum(len(p) for p, _ in matches)]))
        loss_th_cls = self.loss_cls(th_logits.flatten(0, 1), labels.flatten(),
                                    avg_factor=num_th.clamp(min=1).item())
        th_mask = self._mask_loss(th_masks, [p for p, _ in matches],
                                  [g for _, g in matches], [t['things'] for t in targets])
        # L_st: presence of each stuff class, masks of the present ones
        present = torch.zeros_like(st_logits, dtype=torch.bool)
        for b, t in enumerate(targets):
            present[b, t['stuff'].labels] = True
        num_st = reduce_mean(cls.new_tensor([present.sum().item()]))
        loss_st_cls = self.loss_cls(st_logits.reshape(-1, 1),
                                    (~present).long().flatten(),  # 0: present, 1: absent
                                    avg_factor=num_st.clamp(min=1).item())
        st_mask = self._mask_loss(
            st_masks, [t['stuff'].labels for t in targets],
            [torch.arange(len(t['stuff']), device=cls.device) for t in targets],
            [t['stuff'] for t in targets])
        losses = dict(
            loss_th_cls=self.lambda_th * loss_th_cls,
            loss_th_mask=self.lambda_th * th_mask['loss_mask'],
            loss_th_dice=self.lambda_th * th_mask['loss_dice'],
            loss_st_cls=self.lambda_st * loss_st_cls,
            loss_st_mask=self.lambda_st * st_mask['loss_mask'],
            loss_st_dice=self.lambda_st * st_mask['loss_dice'])
        if 'pq' in self.aux_losses or 'mask_id' in self.aux_losses:
            losses.update(self._layer_aux_losses(th_logits, st_logits, masks, matches,
                                                 present, targets))
        return losses

    def _center_of_segment(self, pos: Tensor, gt_idx: Tensor, target: dict) -> Tensor:
        """(S,) the center matched to each of one image's segments (things,
        then stuff), -1 for an unmatched object."""
        n_th = len(target['things'])
        out = torch.full((n_th + len(target['stuff']), ), -1, dtype=torch.long,
                         device=pos.device)
        out[gt_idx] = pos
        out[n_th:] = self.num_thing_queries + target['stuff'].labels
        return out

    def _layer_aux_losses(self, th_logits: Tensor, st_logits: Tensor, masks: Tensor,
                          matches: list, present: Tensor, targets: List[dict]
                          ) -> Dict[str, Tensor]:
        """PQ-style loss and mask-ID cross-entropy of one prediction."""
        out = {}
        w = self.lambda_aux
        B, K = masks.shape[:2]
        center_maps, mask_probs, gt_masks, probs, others = [], [], [], [], []
        id_probs = masks.float().softmax(dim=1) if 'pq' in self.aux_losses else None
        th_probs, st_probs = th_logits.float().sigmoid(), st_logits.float().sigmoid()
        for b, ((pos, gt_idx), t) in enumerate(zip(matches, targets)):
            centers = self._center_of_segment(pos, gt_idx, t)
            lookup = torch.cat([centers, centers.new_full((1, ), -1)])
            center_maps.append(lookup[t['seg_map']])  # -1 -> the last entry, -1
            if id_probs is None:
                continue
            ok = centers >= 0
            seg = torch.nonzero(ok).squeeze(1)
            mask_probs.append(id_probs[b, centers[seg]].flatten(1))
            gt_masks.append(t['small'][seg].flatten(1))
            # class probability of each matched segment (things, then stuff)
            th_seg = seg[seg < len(t['things'])]
            probs.append(torch.cat([
                th_probs[b, centers[th_seg], t['things'].labels[th_seg]],
                st_probs[b, t['stuff'].labels]]))
            matched_th = torch.zeros(self.num_thing_queries, dtype=torch.bool,
                                     device=masks.device)
            matched_th[pos] = True
            others.append(torch.cat([th_probs[b][~matched_th].amax(-1)
                                     if self.num_things_classes else th_probs.new_zeros(0),
                                     st_probs[b][~present[b]]]))
        if 'mask_id' in self.aux_losses:
            out['loss_aux_mask_id'] = w * self.aux_losses['mask_id']['weight'] * \
                mask_id_cross_entropy(masks, torch.stack(center_maps))
        if id_probs is not None:
            cfg = self.aux_losses['pq']
            out['loss_aux_pq'] = w * cfg['weight'] * pq_style_loss(
                torch.cat(mask_probs), torch.cat(gt_masks), torch.cat(probs),
                torch.cat(others), alpha=cfg['alpha'])
        return out

    def _pixel_losses(self, feature: Tensor, targets: List[dict]) -> Dict[str, Tensor]:
        """The auxiliary terms on the pixel features (once, not per layer)."""
        out = {}
        w = self.lambda_aux
        if 'inst_disc' in self.aux_losses:
            cfg = self.aux_losses['inst_disc']
            out['loss_aux_inst_disc'] = w * cfg['weight'] * instance_discrimination_loss(
                feature, torch.stack([t['seg_map'] for t in targets]),
                temperature=cfg['temperature'], num_points=cfg['num_points'])
        if 'semantic' in self.aux_losses:
            out['loss_aux_semantic'] = w * self.aux_losses['semantic']['weight'] * \
                semantic_cross_entropy(self.sem_embed(feature),
                                       torch.stack([t['sem'] for t in targets]))
        return out

    # ------------------------------------------------------------- predict
    def predict(self, x: Sequence[Tensor], batch_data_samples: list,
                rescale: bool = True) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per image the final centers' thing class probabilities (Q_th,
        N_th), stuff presence probabilities (N_st,) and all centers' mask
        probabilities (K, H, W) at the original image size (``rescale``) or
        the input size; the detector's ``panoptic_fusion_head`` turns them
        into mmdet's outputs."""
        metas = [s.metainfo for s in batch_data_samples]
        cls_list, mask_list, _ = self(x, batch_data_samples)
        cls, masks = cls_list[-1], mask_list[-1]
        H, W = metas[0]['batch_input_shape']
        masks = F.interpolate(masks.float(), size=(H, W), mode='bilinear',
                              align_corners=False)
        th_logits, st_logits = self._split(cls.float())
        results = []
        for b, meta in enumerate(metas):
            img_h, img_w = meta['img_shape'][:2]
            logits = masks[b][:, :img_h, :img_w]
            if rescale:
                out_h, out_w = meta['ori_shape'][:2]
                if (out_h, out_w) != (img_h, img_w):
                    logits = F.interpolate(logits[None], size=(out_h, out_w),
                                           mode='bilinear', align_corners=False)[0]
            results.append((th_logits[b].sigmoid(), st_logits[b].sigmoid(), logits.sigmoid()))
        return results
