"""What the detection and panoptic heads share on top of the decoder trunk.

:class:`ClusterFormerCenterHead` composes the
:class:`~mmcf.models.trunk.ClusterDecoderTrunk` (pixel decoder, six RCA
decoder layers, centers started from the encoder's, Table 6f) and gives every
decoded set of centers class logits (a small FFN, sigmoid, §4.1.2) and mask
logits (``<MLP(C_k), F_p>``, §4.1.4). It also holds the losses, Hungarian
matching and point sampling the heads share. Each task head adds what is its
own: :class:`~mmcf.models.detection.ClusterFormerDetHead` the box branch,
:class:`~mmcf.models.detection.ClusterFormerPanopticHead` the stuff centers
and Eq. 7.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import reduce_mean
from mmengine.config import ConfigDict
from mmengine.model import BaseModule, bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor

from ..clustering import Mlp
from ..trunk import ClusterDecoderTrunk, TrunkHeadMixin, TrunkOutput

ASSIGN_PRIORS = ('none', 'mask')


class ClusterFormerCenterHead(TrunkHeadMixin, BaseModule):
    """The decoder trunk (``self.trunk``), class and mask predictions of
    every decoded set of centers, losses and matching (see the module
    docstring); not registered, the task heads are.

    Args:
        in_channels: channels of the four backbone maps.
        num_classes: classes of the class logits.
        feat_channels: decoder width D.
        num_queries: number of centers K.
        pixel_decoder: config of the pixel decoder (mmdet's
            ``MSDeformAttnPixelDecoder`` by default, as Mask2Former's); its
            multi-scale outputs (strides 32, 16, 8) are the ``I^l`` of Eq. 4
            and its stride-4 output the mask features ``F``.
        transformer_decoder: ``dict(num_layers=6, layer_cfg=dict(...))``, see
            :class:`~mmcf.models.decoder.ClusterTransformerDecoder`.
        center_init: 'encoder' | 'free' | 'feature' | 'mixed_selection' |
            'scene_adaptive' (Table 6f, see
            :class:`~mmcf.models.decoder.CenterQueryInit`).
        encoder_channels: width of the encoder centers (default: the last of
            ``in_channels``).
        num_encoder_centers: K_enc of the backbone (100 for tiny / small).
        with_mask: predict masks.
        feat_pos: add a sine position encoding and a learned level embedding
            to the clustered tokens (:class:`~mmcf.models.trunk.
            ClusterDecoderTrunk`).
        supervise_initial: also predict from the initial centers.
        assign_prior: how the E-steps of Eq. 4 weigh the pixels (§3.3 is
            open on it). ``'none'``: ``softmax_k(S_ki)`` over all pixels of
            the level. ``'mask'``: every layer's E-step takes the mask that
            the previous layer's centers predict as a per-pixel prior,
            ``softmax_k(S_ki + log sigmoid(m_k(i)))`` (``m_k`` resized to
            the level, detached): the E-step of a mixture whose mixing
            weights are the current masks, so a center clusters the pixels
            of its own object, the clustering counterpart of Mask2Former's
            masked attention. Needs ``with_mask``.
        loss_cls / loss_mask / loss_dice: mmdet losses (sigmoid classes).
        train_cfg: ``assigner`` and the point-loss settings ``num_points``,
            ``oversample_ratio``, ``importance_sample_ratio``.
        test_cfg: the task head's inference settings.
        record_assignments: 'none' | 'last' | 'all': in eval mode, record
            each decoder layer's assignment maps and cluster health
            (:mod:`mmcf.models.recording`).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 feat_channels: int = 256,
                 num_queries: int = 100,
                 pixel_decoder: Optional[dict] = None,
                 transformer_decoder: Optional[dict] = None,
                 center_init: str = 'encoder',
                 encoder_channels: Optional[int] = None,
                 num_encoder_centers: int = 100,
                 with_mask: bool = True,
                 feat_pos: bool = True,
                 supervise_initial: bool = True,
                 assign_prior: str = 'none',
                 loss_cls: Optional[dict] = None,
                 loss_mask: Optional[dict] = None,
                 loss_dice: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 record_assignments: str = 'last',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 4:
            raise ValueError(f'{type(self).__name__} takes the four backbone maps '
                             f'(strides 4-32), got in_channels={list(in_channels)}')
        D = feat_channels
        self.in_channels = list(in_channels)
        self.feat_channels = D
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.with_mask = with_mask
        self.feat_pos = feat_pos
        self.supervise_initial = supervise_initial
        self.center_init = center_init
        if assign_prior not in ASSIGN_PRIORS:
            raise ValueError(f'assign_prior must be one of {ASSIGN_PRIORS}, got '
                             f'{assign_prior!r}')
        if assign_prior == 'mask' and not with_mask:
            raise ValueError("assign_prior='mask' needs the mask branch (with_mask=True)")
        self.assign_prior = assign_prior

        # --- pixel decoder, centers (Table 6f) and decoder (§3.3) -----------
        self.trunk = ClusterDecoderTrunk(
            self.in_channels, D, num_queries, MODELS, pixel_decoder=pixel_decoder,
            transformer_decoder=transformer_decoder, center_init=center_init,
            encoder_channels=encoder_channels, num_encoder_centers=num_encoder_centers,
            feat_pos=feat_pos, record_assignments=record_assignments)
        self.num_levels = self.trunk.num_levels
        self.num_layers = self.trunk.num_layers

        # --- class and mask predictions -------------------------------------
        self.cls_embed = Mlp(D, D, num_classes)  # "a small FFN" (§4.1.2)
        if with_mask:
            self.mask_embed = Mlp(D, D, D)

        # --- losses, matching ------------------------------------------------
        self.loss_cls = MODELS.build(loss_cls or dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0))
        if not getattr(self.loss_cls, 'use_sigmoid', True):
            raise ValueError('loss_cls must be a sigmoid loss (use_sigmoid=True): the '
                             'head has no background class (§4.1.2 trains the classes '
                             'with binary cross-entropy)')
        if with_mask:
            self.loss_mask = MODELS.build(loss_mask or dict(
                type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                loss_weight=5.0))
            self.loss_dice = MODELS.build(loss_dice or dict(
                type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                naive_dice=True, eps=1.0, loss_weight=5.0))
        self.train_cfg = ConfigDict(train_cfg or {})
        self.test_cfg = ConfigDict(test_cfg or {})
        if 'assigner' not in self.train_cfg:
            raise ValueError(f'{type(self).__name__}: train_cfg needs an assigner')
        self.assigner = TASK_UTILS.build(self.train_cfg['assigner'])
        self.num_points = self.train_cfg.get('num_points', 12544)
        self.oversample_ratio = self.train_cfg.get('oversample_ratio', 3.0)
        self.importance_sample_ratio = self.train_cfg.get('importance_sample_ratio', 0.75)

    # ------------------------------------------------------------------ init
    def _reset_parameters(self) -> None:
        """The trunk's init (Xavier decoder, level embedding, Table 6f
        centers) and a 1% prior for the sigmoid classes (as mmdet's sigmoid
        DETR heads)."""
        self.trunk.reset_parameters()
        nn.init.constant_(self.cls_embed.fc2.bias, bias_init_with_prob(0.01))

    # --------------------------------------------------------------- decode
    #: whether the predictions read the decoder's assignment maps (a
    #: subclass that does says so); when not, the fused E/M step writes none
    reads_assignment_maps = False

    def decode(self, x: Sequence[Tensor]) -> TrunkOutput:
        """Run the trunk (:class:`~mmcf.models.trunk.TrunkOutput`: every
        decoded set of centers, the initial ones first, their assignment maps
        and clustered sizes, the mask features), with the mask prior of
        ``assign_prior='mask'``."""
        mask_embed = self.mask_embed if self.assign_prior == 'mask' else None
        return self.trunk(x, mask_embed=mask_embed, return_maps=self.reads_assignment_maps,
                          owner=type(self).__name__)

    def supervised(self, out: TrunkOutput) -> range:
        """Indices of the supervised entries of ``out.centers``: the initial
        centers' when ``supervise_initial``, then every decoder layer's."""
        return range(0 if self.supervise_initial else 1, len(out.centers))

    def class_and_masks(self, centers: Tensor, mask_feature: Tensor
                        ) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """Class logits (B, K, C), mask logits (B, K, H/4, W/4) or None
        without masks, and the normed centers the predictions read."""
        dec = self.trunk.out_norm(centers)
        cls_scores = self.cls_embed(dec)
        mask_preds = None
        if self.with_mask:
            mask_preds = self._mask_logits(dec, mask_feature)
        return cls_scores, mask_preds, dec

    def _mask_logits(self, dec: Tensor, mask_feature: Tensor) -> Tensor:
        """``<MLP(C_k), F_p>`` (§4.1.4): (B, K, H/4, W/4) mask logits of
        the normed centers ``dec`` (B, K, D)."""
        return torch.einsum('bkd,bdhw->bkhw', self.mask_embed(dec), mask_feature)

    # -------------------------------------------------------- loss pieces
    def _hungarian_match(self, pred: InstanceData, gt: InstanceData,
                         mask_pred: Optional[Tensor], gt_masks: Optional[Tensor],
                         img_meta: dict) -> Tuple[Tensor, Tensor]:
        """Run the assigner on one image: ``pred`` holds the (detached)
        class scores (and boxes), ``gt`` the labels (and boxes); with
        ``mask_pred`` (K, h, w) and ``gt_masks`` the mask costs read the same
        ``num_points`` random points of every mask. Returns the matched
        prediction indices and their ground-truth indices."""
        if mask_pred is not None and len(gt) > 0:
            coords = torch.rand((1, self.num_points, 2), device=mask_pred.device)
            pred.masks = point_sample(mask_pred.detach().unsqueeze(1),
                                      coords.expand(len(mask_pred), -1, -1)).squeeze(1)
            gt.masks = point_sample(gt_masks.unsqueeze(1).float(),
                                    coords.expand(len(gt), -1, -1)).squeeze(1)
        assign = self.assigner.assign(pred_instances=pred, gt_instances=gt,
                                      img_meta=img_meta)
        pos_inds = torch.nonzero(assign.gt_inds > 0, as_tuple=False).squeeze(-1).unique()
        return pos_inds, assign.gt_inds[pos_inds] - 1

    def _mask_loss(self, mask_preds: Tensor, pos_inds_list: List[Tensor],
                   pos_gt_list: List[Tensor], gts: List[InstanceData]) -> Dict[str, Tensor]:
        """BCE + dice on uncertainty-sampled points of the matched masks."""
        preds = torch.cat([m[p] for m, p in zip(mask_preds, pos_inds_list)])
        targets = torch.cat([g.masks[i] for g, i in zip(gts, pos_gt_list)])
        num_masks = reduce_mean(mask_preds.new_tensor([preds.shape[0]])).clamp(min=1).item()
        if preds.shape[0] == 0:  # no object in the batch: zero, with a graph
            zero = mask_preds.sum() * 0.0
            return dict(loss_mask=zero, loss_dice=zero)
        with torch.no_grad():
            coords = get_uncertain_point_coords_with_randomness(
                preds.unsqueeze(1).float(), None, self.num_points, self.oversample_ratio,
                self.importance_sample_ratio)
            point_targets = point_sample(targets.unsqueeze(1).float(), coords).squeeze(1)
        point_preds = point_sample(preds.unsqueeze(1), coords).squeeze(1)
        loss_dice = self.loss_dice(point_preds, point_targets, avg_factor=num_masks)
        loss_mask = self.loss_mask(point_preds.reshape(-1), point_targets.reshape(-1),
                                   avg_factor=num_masks * self.num_points)
        return dict(loss_mask=loss_mask, loss_dice=loss_dice)
