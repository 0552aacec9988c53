"""ClusterFormer decode head for semantic segmentation (§3.3, §4.1.3).

Pipeline of :class:`ClusterFormerHead` for backbone maps ``I^1..I^4``
(strides 4/8/16/32) and the encoder's last-stage cluster centers ``E``::

    F, {I^l} = PixelDecoder(I^1..I^4)      # F: stride-4 per-pixel features
    C^0      = CenterInit(E | free | F)    # K = num_classes centers (Table 6f)
    for l in 1..6:                         # six decoder layers (§3.3)
        C^l = RCA^l(I^(l mod L), C^(l-1))   # Eq. 4, T = 3 EM iterations
        C^l = SelfAttn(C^l); C^l = FFN(C^l)
        S^l = < MLP(C^l), F > / sqrt(D)     # class scores, (B, K, H/4, W/4)

Every ``S^l`` (and ``S^0`` of the initial centers) is supervised with the
configured losses (cross-entropy x5 + dice x1 in §4.1.3); inference uses the
last one.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import DiceLoss, accuracy
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ..clustering import Mlp
from ..decoder import (LEGACY_DECODER_KEYS, CenterQueryInit, ClusterDecoderHeadMixin,
                       ClusterTransformerDecoder, build_pixel_decoder,
                       merge_legacy_decoder_cfg)
from ..recording import AssignmentRecorder

SIMILARITIES = ('dot', 'cosine')


@MODELS.register_module()
class ClusterFormerHead(ClusterDecoderHeadMixin, AssignmentRecorder, BaseDecodeHead):
    """ClusterFormer decode head (§3.3 "Adaptation to ... Segmentation").

    **Pixel decoder.** ``pixel_decoder`` is any OpenMMLab pixel decoder that
    returns ``(mask_feature, extra)``; ``in_channels``, ``feat_channels`` and
    ``out_channels`` are filled in from this head. Two kinds are supported:

    * multi-scale, e.g. ``type='mmdet.MSDeformAttnPixelDecoder'`` (default):
      ``extra`` is its list of multi-scale maps (strides 32, 16, 8), used as
      the ``I^l`` of Eq. 4.
    * single-output, e.g. the FPN-style ``type='mmdet.PixelDecoder'``: the
      ``I^l`` are made, as Eq. 4 says, by average pooling the stride-4
      ``mask_feature`` to ``num_levels`` coarser maps (strides 32, 16, 8 for
      the default 3).

    **Transformer decoder.** ``transformer_decoder`` configures a
    :class:`~mmcf.models.decoder.ClusterTransformerDecoder`: ``num_layers``
    (6, §3.3) layers of :class:`~mmcf.models.decoder.ClusterDecoderLayer`,
    each one RCA layer of Eq. 4 with ``T = layer_cfg.num_iters`` (3)
    iterations, then self-attention and an FFN. Layer ``l``
    clusters the pixel features of level ``l mod L`` (coarse to fine, in
    round robin), so the stack walks the feature hierarchy as Eq. 4 does.
    RCA layers are not shared across layers (§3.2).

    **Centers.** There are ``num_classes`` centers, one per class (§4.1.3);
    their initialisation ``center_init`` follows Table 6f:

    * ``'encoder'`` (default, "centers from encoder"): the backbone's
      last-stage centers ``E`` (B, K_enc, C_enc) (``out_centers=True``) are
      projected to the decoder width, ``P = LN(Linear(E))``, and mapped from
      the K_enc encoder centers to the K class centers with a learned linear
      map over the center axis, ``C^0 = W P`` with ``W`` (K, K_enc). The
      encoder's centers come from a fixed pooling grid (Eq. 5), so center
      ``j`` has the same meaning in every image and ``W`` can learn which
      encoder clusters feed which class.
    * ``'free'`` ("free parameters"): ``C^0`` is a learned (K, D) table; the
      encoder centers are ignored.
    * ``'feature'`` ("direct feature embedding"): ``C^0`` is Eq. 5's
      ``FFN(AdaptivePool_K(I))`` of the coarsest pixel-decoder level.

    With ``'free'`` or ``'feature'`` build the backbone with
    ``out_centers=False`` (its center norm would otherwise get no gradient,
    which distributed training refuses).

    **Class scores.** ``S[k, p] = <MLP(LN(C_k)), F_p> / sqrt(D)``
    (``similarity='dot'``, scaled like attention logits so that a softmax over
    150 classes does not start saturated), or the cosine similarity times a
    learned scale (``'cosine'``):
    per-pixel logits over the K class centers, so ``softmax_K`` of them is a
    soft assignment of every pixel to a class center, the clustering view of
    §3.1.

    **Losses.** ``loss_decode`` (mmseg losses) is applied to every supervised
    prediction: the initial centers' (``supervise_initial``) and every
    decoder layer's (``deep_supervision``); the last layer's terms are named
    ``loss_*``, the others ``d{i}.loss_*`` in order (``d0`` = initial
    centers, ``d1..d5`` = layers 1-5 by default).
    Logits are upsampled to the label size as in mmseg's ``BaseDecodeHead``.
    Pixels equal to ``ignore_index`` are left out of every loss: the
    cross-entropy drops them itself; a :class:`~mmseg.models.losses.DiceLoss`
    is evaluated per image on the valid pixels only (mmseg's DiceLoss would
    otherwise count the predictions at ignored pixels). A batch that is all
    ``ignore_index`` gives finite zero cross-entropy and dice terms.

    **Bad labels** are refused with a ``ValueError``: a label value outside
    ``0..num_classes-1`` that is not ``ignore_index`` (naming the value and
    the number of classes), and a label map whose size differs from its
    (padded) image (naming both sizes). See also
    :class:`~mmcf.models.segmentation.CheckSegSize` for a pipeline check.

    Args:
        in_channels: channels of the backbone maps selected by ``in_index``.
        channels: decoder width D (pixel features and centers).
        num_classes: number of classes = number of centers K.
        in_index: backbone outputs used as maps (the centers, when present,
            are always the backbone's last output).
        pixel_decoder: config of the pixel decoder (see above).
        num_levels: number of pooled levels for single-output decoders.
        transformer_decoder: ``dict(num_layers=6, layer_cfg=dict(...))``
            with the decoder layers' ``num_iters`` (T, 3), ``head_dim`` (32,
            as the encoder), ``num_heads`` (self-attention among centers),
            ``ffn_channels``, ``dropout``, ``center_update``, ``m_step``,
            ``cluster_logits``, ``logit_scale``, ``residual_m_step``,
            ``norm_cfg``, ``act_cfg``; see
            :class:`~mmcf.models.decoder.ClusterTransformerDecoder`. The flat
            keys of mmcf 0.1 (``num_layers=``, ``num_iters=``, ...,
            ``transformer_norm_cfg=``, ``transformer_act_cfg=``) still work,
            with a deprecation warning.
        center_init: 'encoder' | 'free' | 'feature' (Table 6f).
        encoder_channels: width C_enc of the encoder centers (default: the
            last of ``in_channels``).
        num_encoder_centers: K_enc (100 for tiny/small).
        similarity: 'dot' | 'cosine' (class scores).
        deep_supervision: supervise every decoder layer.
        supervise_initial: also supervise the initial centers.
        aux_loss_weight: factor on the losses of the non-final predictions.
        transformer_norm_cfg / transformer_act_cfg: norm and activation of
            the decoder layers.
        record_assignments: 'none' | 'last' | 'all': in eval mode, record
            each decoder layer's pixel-to-class-center assignment maps (last
            EM iteration, or all), read by ``assignment_maps(stage=layer)``
            (protocol of :mod:`mmcf.visualization.protocol`).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 256,
                 *,
                 num_classes: int,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 pixel_decoder: Optional[dict] = None,
                 num_levels: int = 3,
                 transformer_decoder: Optional[dict] = None,
                 center_init: str = 'encoder',
                 encoder_channels: Optional[int] = None,
                 num_encoder_centers: int = 100,
                 similarity: str = 'dot',
                 deep_supervision: bool = True,
                 supervise_initial: bool = True,
                 aux_loss_weight: float = 1.0,
                 record_assignments: str = 'last',
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        if similarity not in SIMILARITIES:
            raise ValueError(f'similarity must be one of {SIMILARITIES}, got {similarity!r}')
        transformer_decoder = merge_legacy_decoder_cfg(
            transformer_decoder,
            {k: kwargs.pop(k) for k in list(kwargs) if k in LEGACY_DECODER_KEYS},
            type(self).__name__)
        if isinstance(in_channels, int) or isinstance(in_index, int):
            raise TypeError('ClusterFormerHead takes several backbone maps: in_channels and '
                            'in_index must be sequences (e.g. [96, 192, 384, 768], [0, 1, 2, 3])')
        kwargs.setdefault('dropout_ratio', 0.0)
        if kwargs.get('input_transform', 'multiple_select') != 'multiple_select':
            raise ValueError("ClusterFormerHead uses input_transform='multiple_select'")
        kwargs['input_transform'] = 'multiple_select'
        out_channels = kwargs.get('out_channels', None)
        if out_channels is not None and out_channels != num_classes:
            raise ValueError(f'ClusterFormerHead predicts one score per class center: '
                             f'out_channels ({out_channels}) must equal num_classes '
                             f'({num_classes})')
        super().__init__(list(in_channels), channels, num_classes=num_classes,
                         in_index=list(in_index), init_cfg=init_cfg, **kwargs)
        # BaseDecodeHead's 1x1 classifier is not used: the class centers are
        # the classifier.
        del self.conv_seg

        D = channels
        self.center_init = center_init
        self.similarity = similarity
        self.deep_supervision = deep_supervision
        self.supervise_initial = supervise_initial
        self.aux_loss_weight = aux_loss_weight

        # --- pixel decoder -------------------------------------------------
        pixel_decoder = dict(pixel_decoder or dict(type='mmdet.MSDeformAttnPixelDecoder'))
        kind = pixel_decoder.get('type')
        if isinstance(kind, str) and '.' not in kind and MODELS.get(kind) is None:
            # mmdet's pixel decoders by their mmdet name, as the detection
            # heads' configs write them
            pixel_decoder['type'] = 'mmdet.' + kind
        self.pixel_decoder = build_pixel_decoder(pixel_decoder, in_channels, D, MODELS)
        # mmdet's MSDeformAttnPixelDecoder (and its kin) return multi-scale
        # maps; FPN-style decoders return (mask_feature, memory).
        self.multi_scale_decoder = hasattr(self.pixel_decoder, 'num_encoder_levels')
        if not self.multi_scale_decoder and num_levels < 1:
            raise ValueError(f'num_levels must be >= 1, got {num_levels}')
        self.num_levels = (self.pixel_decoder.num_encoder_levels
                           if self.multi_scale_decoder else num_levels)

        # --- initial centers (Table 6f) -----------------------------------
        K = num_classes
        self.encoder_channels = encoder_channels or in_channels[-1]
        self.query_init = CenterQueryInit(
            center_init, K, D, encoder_channels=self.encoder_channels,
            num_encoder_centers=num_encoder_centers)
        self.center_pos = nn.Embedding(K, D)

        # --- transformer decoder (§3.3) ----------------------------------
        self.transformer_decoder = ClusterTransformerDecoder(D, **transformer_decoder)
        self.num_layers = self.transformer_decoder.num_layers
        norm_cfg = transformer_decoder['layer_cfg'].get('norm_cfg') or dict(type='LN')
        self.out_norm = build_norm_layer(norm_cfg, D)[1]
        self.center_embed = Mlp(D, D, D)
        if similarity == 'cosine':
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.init_assignment_recording(self.transformer_decoder.rca_modules,
                                       self.transformer_decoder.num_iters, record_assignments)
        self._reset_parameters()

    # ------------------------------------------------------------------ init
    def _reset_parameters(self) -> None:
        """Xavier for the decoder's matrices (as Mask2Former's decoder), and
        the selection init of the encoder-center map ``W`` (Table 6f)."""
        self.transformer_decoder.reset_parameters()
        for p in self.center_embed.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.query_init.reset_parameters()

    # --------------------------------------------------------------- forward
    def _split_inputs(self, inputs: Sequence[Tensor]
                      ) -> Tuple[List[Tensor], Optional[Tensor]]:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise TypeError('ClusterFormerHead expects the tuple of backbone outputs')
        centers = inputs[-1] if inputs[-1].dim() == 3 else None
        maps = [inputs[i] for i in self.in_index]
        for i, m, ch in zip(self.in_index, maps, self.in_channels):
            if m.dim() != 4:
                raise ValueError(
                    f'backbone output {i} has shape {tuple(m.shape)}, not an NCHW map: '
                    'in_index must select the feature maps (the centers are read from '
                    'the last output)')
            if m.shape[1] != ch:
                raise ValueError(f'backbone output {i} has {m.shape[1]} channels, the head '
                                 f'was built with in_channels[{self.in_index.index(i)}]={ch}')
        return maps, centers

    def _pixel_decode(self, maps: List[Tensor], batch_img_metas: Optional[List[dict]]
                      ) -> Tuple[Tensor, List[Tensor]]:
        if self.multi_scale_decoder:
            mask_feature, levels = self.pixel_decoder(maps)
            return mask_feature, list(levels)
        metas = self._decoder_metas(maps, batch_img_metas)
        mask_feature, _ = self.pixel_decoder(maps, metas)
        # Eq. 4: I^l by standard pooling to H/2^l x W/2^l, coarse to fine
        levels = [F.avg_pool2d(mask_feature, 2 ** (self.num_levels - i), ceil_mode=True)
                  for i in range(self.num_levels)]
        return mask_feature, levels

    @staticmethod
    def _decoder_metas(maps: List[Tensor], batch_img_metas: Optional[List[dict]]
                       ) -> List[dict]:
        """Image metas for pixel decoders that build padding masks from them."""
        B = maps[0].shape[0]
        full = (maps[0].shape[-2] * 4, maps[0].shape[-1] * 4)
        metas = [dict(m) for m in (batch_img_metas or [{}] * B)]
        for m in metas:
            m.setdefault('batch_input_shape', tuple(m.get('pad_shape', full))[:2])
            m.setdefault('img_shape', m['batch_input_shape'])
            m['img_shape'] = tuple(m['img_shape'])[:2]
        return metas

    def _class_scores(self, centers: Tensor, mask_feature: Tensor) -> Tensor:
        emb = self.center_embed(self.out_norm(centers))  # (B, K, D)
        if self.similarity == 'cosine':
            emb = F.normalize(emb, dim=-1)
            mask_feature = F.normalize(mask_feature, dim=1)
            emb = emb * self.logit_scale.exp().clamp(max=100.0)
        else:  # scaled dot product, O(1) logits at init whatever the width
            emb = emb * emb.shape[-1] ** -0.5
        return torch.einsum('bkd,bdhw->bkhw', emb, mask_feature)

    def forward(self, inputs: Sequence[Tensor],
                batch_img_metas: Optional[List[dict]] = None,
                all_layers: Optional[bool] = None) -> List[Tensor]:
        """Class-score maps ``(B, num_classes, H/4, W/4)``.

        Returns a list whose LAST element is the final prediction. With
        ``all_layers`` (default: in training mode) it holds every supervised
        prediction: the initial centers' (if ``supervise_initial``) and each
        decoder layer's (if ``deep_supervision``, else only the last).
        """
        if all_layers is None:
            all_layers = self.training
        maps, enc_centers = self._split_inputs(inputs)
        mask_feature, levels = self._pixel_decode(maps, batch_img_metas)
        B = mask_feature.shape[0]
        centers = self.query_init(enc_centers, levels[0])
        pos = self.center_pos.weight.unsqueeze(0).expand(B, -1, -1).to(centers.dtype)
        preds = []
        if all_layers and self.supervise_initial:
            preds.append(self._class_scores(centers, mask_feature))
        decoder = self.transformer_decoder
        self.set_assignment_shapes([levels[decoder.level_index(i, len(levels))].shape
                                    for i in range(self.num_layers)])
        tokens = [lvl.flatten(2).transpose(1, 2) for lvl in levels]
        for i, centers, _ in decoder(tokens, centers, pos, return_maps=False):
            last = i == self.num_layers - 1
            if last or (all_layers and self.deep_supervision):
                preds.append(self._class_scores(centers, mask_feature))
        return preds

    # ------------------------------------------------------------ train/test
    def loss(self, inputs: Sequence[Tensor], batch_data_samples: list,
             train_cfg: dict) -> Dict[str, Tensor]:
        metas = [s.metainfo for s in batch_data_samples]
        preds = self.forward(inputs, metas, all_layers=True)
        return self.loss_by_feat(preds, batch_data_samples)

    def predict(self, inputs: Sequence[Tensor], batch_img_metas: List[dict],
                test_cfg: dict) -> Tensor:
        preds = self.forward(inputs, batch_img_metas, all_layers=False)
        return self.predict_by_feat(preds[-1], batch_img_metas)

    # ------------------------------------------------------------------ loss
    def _check_labels(self, batch_data_samples: list) -> None:
        """Refuse label maps that do not fit their image or the classes."""
        for i, sample in enumerate(batch_data_samples):
            label = sample.gt_sem_seg.data
            meta = sample.metainfo
            name = meta.get('seg_map_path') or meta.get('img_path') or f'sample {i}'
            if 'img_shape' in meta:
                h, w = (int(v) for v in tuple(meta['img_shape'])[:2])
                # SegDataPreProcessor pads image and label by the same amounts
                pad = meta.get('padding_size', (0, 0, 0, 0))
                expected = (h + int(pad[2]) + int(pad[3]), w + int(pad[0]) + int(pad[1]))
                got = tuple(int(v) for v in label.shape[-2:])
                if got != expected:
                    raise ValueError(
                        f'{name}: the label map is {got[0]}x{got[1]} (HxW) but its image is '
                        f'{expected[0]}x{expected[1]}; image and label must have the same '
                        'size (check the data set, or add CheckSegSize after LoadAnnotations)')
            bad = (label != self.ignore_index) & ((label < 0) | (label >= self.num_classes))
            if bad.any():
                values = torch.unique(label[bad]).tolist()
                raise ValueError(
                    f'{name}: label value {values[0]} (all bad values: {values[:10]}) is out '
                    f'of range for num_classes={self.num_classes} (valid labels are '
                    f'0..{self.num_classes - 1}, and ignore_index={self.ignore_index}); fix '
                    'the annotations, reduce_zero_label or num_classes')

    def _dice_on_valid(self, loss_fn: nn.Module, logits: Tensor, label: Tensor) -> Tensor:
        """mmseg's DiceLoss per image on the non-ignored pixels only."""
        terms = []
        for b in range(logits.shape[0]):
            valid = label[b] != self.ignore_index
            n = int(valid.sum())
            if n == 0:
                continue
            pred = logits[b][:, valid].reshape(1, logits.shape[1], n, 1)
            target = label[b][valid].reshape(1, n, 1)
            terms.append(loss_fn(pred, target, ignore_index=self.ignore_index))
        if not terms:
            return logits.sum() * 0.0
        return torch.stack(terms).mean()

    def _loss_single(self, logits: Tensor, label: Tensor, weight: Optional[Tensor]
                     ) -> Dict[str, Tensor]:
        losses: Dict[str, Tensor] = {}
        loss_fns = self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) \
            else [self.loss_decode]
        for loss_fn in loss_fns:
            if isinstance(loss_fn, DiceLoss):
                value = self._dice_on_valid(loss_fn, logits, label)
            else:
                value = loss_fn(logits, label, weight=weight, ignore_index=self.ignore_index)
            name = loss_fn.loss_name
            losses[name] = losses[name] + value if name in losses else value
        return losses

    def loss_by_feat(self, seg_logits: Union[Tensor, List[Tensor]],
                     batch_data_samples: list) -> Dict[str, Tensor]:
        """Losses of every prediction in ``seg_logits`` (the last is final)."""
        preds = [seg_logits] if isinstance(seg_logits, Tensor) else list(seg_logits)
        self._check_labels(batch_data_samples)
        seg_label = self._stack_batch_gt(batch_data_samples)
        size = seg_label.shape[2:]
        label = seg_label.squeeze(1)
        losses: Dict[str, Tensor] = {}
        final = None
        for i, logits in enumerate(preds):
            logits = resize(logits, size=size, mode='bilinear',
                            align_corners=self.align_corners)
            weight = self.sampler.sample(logits, seg_label) if self.sampler is not None \
                else None
            terms = self._loss_single(logits, label, weight)
            if i == len(preds) - 1:
                losses.update(terms)
                final = logits
            else:
                for k, v in terms.items():
                    losses[f'd{i}.{k}'] = v * self.aux_loss_weight
        valid = label != self.ignore_index
        if valid.any():
            losses['acc_seg'] = accuracy(final, label, ignore_index=self.ignore_index)
        else:  # mmseg's accuracy divides by the number of valid pixels
            losses['acc_seg'] = final.new_zeros(1)
        return losses
