"""ClusterFormer decode head for semantic segmentation (§3.3, §4.1.3).

:class:`ClusterFormerHead` runs the decoder trunk every head shares (pixel
decoder, K = num_classes class centers from the encoder's (Table 6f), six
RCA decoder layers; the pipeline is sketched in :mod:`mmcf.models.trunk`;
no position encoding on the clustered tokens) and scores every pixel
against every layer's class centers ``C^l``::

    S^l = < MLP(LN_out(C^l)), F > / sqrt(D)   # class scores, (B, K, H/4, W/4)

Every ``S^l`` (and ``S^0`` of the initial centers) is supervised with the
configured losses (cross-entropy x5 + dice x1 in §4.1.3); inference uses the
last one.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import DiceLoss
from mmseg.registry import MODELS
from torch import Tensor

from ..clustering import Mlp
from ..trunk import ClusterDecoderTrunk, TrunkHeadMixin
from ..utils import resize_bilinear

SIMILARITIES = ('dot', 'cosine')
DICE_MODES = ('image', 'class')
AUX_RESOLUTIONS = ('label', 'logits')


@MODELS.register_module()
class ClusterFormerHead(TrunkHeadMixin, BaseDecodeHead):
    """ClusterFormer decode head (§3.3 "Adaptation to ... Segmentation").

    **Trunk.** Pixel decoder, initial centers, decoder layers and their
    assignment recorder are the :class:`~mmcf.models.trunk.
    ClusterDecoderTrunk` every head shares (``self.trunk``): any OpenMMLab
    pixel decoder (multi-scale as mmdet's ``MSDeformAttnPixelDecoder``, the
    default, or single-output as the FPN-style ``PixelDecoder``, pooled to
    ``num_levels`` levels), then ``transformer_decoder.num_layers`` (6,
    §3.3) layers of :class:`~mmcf.models.decoder.ClusterDecoderLayer`, each
    one RCA layer of Eq. 4, self-attention and an FFN.

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

    **Where the auxiliary losses are computed** (``aux_resolution``). The
    final prediction is always scored at the labels' size (logits upsampled,
    as mmseg's heads do). ``'label'`` (default) upsamples every supervised
    prediction so; ``'logits'`` scores the non-final ones at their own
    stride-4 size against the labels resized by nearest neighbour (a label
    map 16 times smaller, as Mask2Former scores its masks on sampled points
    rather than on the full image): deep supervision at a fraction of the
    cost, which the paper does not specify.

    **Dice** (``dice_mode``). §4.1.3 adds "an auxiliary dice loss" following
    Mask2Former [17], whose dice is computed per mask, i.e. per class for
    semantic segmentation. ``'image'`` (default) is mmseg's ``DiceLoss`` as
    it is: one dice over all classes and pixels of an image, which the large
    classes dominate. ``'class'`` is Mask2Former's reading: one dice per
    class present in the image (its soft mask ``p_c`` against the class's
    mask), averaged over the (image, class) pairs, so a thin class counts as
    much as the road; the DiceLoss's ``use_sigmoid``, ``naive_dice``,
    ``eps`` and ``loss_weight`` apply as they do per image.

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
            with the decoder layers' ``num_heads`` (self-attention among
            centers), ``ffn_channels``, ``dropout``, ``norm_cfg``,
            ``act_cfg`` and ``clustering_cfg`` (the RCA: ``num_iters`` (T,
            3), ``head_dim`` (32, as the encoder), ``logits``, ...); see
            :class:`~mmcf.models.decoder.ClusterTransformerDecoder`.
        center_init: 'encoder' | 'free' | 'feature' (Table 6f).
        encoder_channels: width C_enc of the encoder centers (default: the
            last of ``in_channels``).
        num_encoder_centers: K_enc (100 for tiny/small).
        similarity: 'dot' | 'cosine' (class scores).
        deep_supervision: supervise every decoder layer.
        supervise_initial: also supervise the initial centers.
        aux_loss_weight: factor on the losses of the non-final predictions.
        dice_mode: 'image' | 'class' (see **Dice**).
        aux_resolution: 'label' | 'logits' (see above).
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
                 dice_mode: str = 'image',
                 aux_resolution: str = 'label',
                 record_assignments: str = 'last',
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        if similarity not in SIMILARITIES:
            raise ValueError(f'similarity must be one of {SIMILARITIES}, got {similarity!r}')
        if dice_mode not in DICE_MODES:
            raise ValueError(f'dice_mode must be one of {DICE_MODES}, got {dice_mode!r}')
        if aux_resolution not in AUX_RESOLUTIONS:
            raise ValueError(f'aux_resolution must be one of {AUX_RESOLUTIONS}, got '
                             f'{aux_resolution!r}')
        if isinstance(in_channels, int) or isinstance(in_index, int):
            raise TypeError('ClusterFormerHead takes several backbone maps: in_channels and '
                            'in_index must be sequences (e.g. [96, 192, 384, 768], [0, 1, 2, 3])')
        if len(in_channels) != len(in_index):
            raise ValueError(f'ClusterFormerHead: in_channels {list(in_channels)} and in_index '
                             f'{list(in_index)} must have the same length (one width per '
                             'backbone map read)')
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
        self.dice_mode = dice_mode
        self.aux_resolution = aux_resolution
        # K = num_classes class centers (Table 6f init), decoder (§3.3)
        self.trunk = ClusterDecoderTrunk(
            in_channels, D, num_classes, MODELS, in_index=in_index,
            pixel_decoder=pixel_decoder, num_levels=num_levels,
            transformer_decoder=transformer_decoder, center_init=center_init,
            encoder_channels=encoder_channels, num_encoder_centers=num_encoder_centers,
            record_assignments=record_assignments)
        self.num_layers = self.trunk.num_layers
        self.center_embed = Mlp(D, D, D)
        if similarity == 'cosine':
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self._reset_parameters()

    # ------------------------------------------------------------------ init
    def _reset_parameters(self) -> None:
        """The trunk's init (Xavier decoder, Table 6f centers) and Xavier for
        the class-center embedding."""
        self.trunk.reset_parameters()
        for p in self.center_embed.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    # --------------------------------------------------------------- forward
    def _class_scores(self, centers: Tensor, mask_feature: Tensor) -> Tensor:
        emb = self.center_embed(self.trunk.out_norm(centers))  # (B, K, D)
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
        out = self.trunk(inputs, batch_img_metas, owner='ClusterFormerHead')
        supervised = out.centers[-1:]
        if all_layers and self.deep_supervision:
            supervised = out.centers[1:]
        if all_layers and self.supervise_initial:
            supervised = out.centers[:1] + supervised
        return [self._class_scores(c, out.mask_feature) for c in supervised]

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
        """mmseg's DiceLoss per image on the non-ignored pixels only, for
        the whole batch at once.

        mmseg's ``dice_loss`` of one image is ``1 - 2a / (b + c)`` with ``a =
        sum p t``, ``b = sum p^2 + eps``, ``c = sum t^2 + eps`` over every
        class and pixel (naive dice: ``1 - (2a + eps) / (b + c + eps)`` with
        ``b = sum p``, ``c = sum t``). On the valid pixels, with ``t`` the
        one-hot label, ``a`` is the sum of each pixel's probability of its
        label, ``sum t^2 = sum t`` the number of valid pixels, and ``b`` a
        sum over the valid pixels of each pixel's class sum: three masked
        reductions per image instead of selecting each image's valid pixels
        and expanding one-hot targets (same values up to summation order;
        tested against the per-image selection). The mean is over the images
        that have a valid pixel.
        """
        valid = label != self.ignore_index  # (B, H, W)
        has_pixels = valid.flatten(1).any(dim=1)
        if not has_pixels.any():
            return logits.sum() * 0.0
        probs = logits
        if loss_fn.activate:
            probs = logits.sigmoid() if loss_fn.use_sigmoid else \
                (logits.softmax(dim=1) if logits.shape[1] != 1 else logits)
        mask = valid.to(probs.dtype)
        index = torch.where(valid, label, 0).unsqueeze(1)
        eps = loss_fn.eps
        if self.dice_mode == 'class':
            return loss_fn.loss_weight * self._class_dice(probs, index, mask, loss_fn)
        a = (probs.gather(1, index).squeeze(1) * mask).flatten(1).sum(1)
        c = mask.flatten(1).sum(1)  # sum t^2 = sum t: one 1 per valid pixel
        if loss_fn.naive_dice:
            b = (probs.sum(dim=1) * mask).flatten(1).sum(1)
            d = (2 * a + eps) / (b + c + eps)
        else:
            b = (probs.square().sum(dim=1) * mask).flatten(1).sum(1)
            d = 2 * a / (b + eps + c + eps)
        return loss_fn.loss_weight * (1 - d)[has_pixels].mean()

    @staticmethod
    def _class_dice(probs: Tensor, index: Tensor, mask: Tensor, loss_fn: nn.Module) -> Tensor:
        """``1 - dice`` per (image, class present in it) of the soft class
        masks ``probs`` (B, C, H, W) on the valid pixels ``mask`` (B, H, W)
        against the labels ``index`` (B, 1, H, W), averaged (``dice_mode=
        'class'``)."""
        target = torch.zeros_like(probs).scatter_(1, index, 1.0) * mask.unsqueeze(1)
        p = probs * mask.unsqueeze(1)
        a = (p * target).flatten(2).sum(2)  # (B, C)
        c = target.flatten(2).sum(2)
        eps = loss_fn.eps
        if loss_fn.naive_dice:
            d = (2 * a + eps) / (p.flatten(2).sum(2) + c + eps)
        else:
            d = 2 * a / (p.square().flatten(2).sum(2) + eps + c + eps)
        present = c > 0
        return (1 - d)[present].mean() if present.any() else probs.sum() * 0.0

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

    def _accuracy(self, logits: Tensor, label: Tensor) -> Tensor:
        """Top-1 pixel accuracy in percent over the valid pixels, (1,), as
        mmseg's ``accuracy`` computes it (the max instead of its top-k, the
        same for k = 1); 0 without a valid pixel."""
        valid = label != self.ignore_index
        if not valid.any():
            return logits.new_zeros(1)
        eps = torch.finfo(torch.float32).eps
        correct = (logits.max(dim=1).indices == label)[valid].float().sum().reshape(1) + eps
        return correct * (100.0 / (valid.sum().item() + eps))

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
        small = None
        for i, logits in enumerate(preds):
            target, target_map = label, seg_label
            if i < len(preds) - 1 and self.aux_resolution == 'logits':
                if small is None or small.shape[-2:] != logits.shape[-2:]:
                    small = F.interpolate(seg_label.float(), size=logits.shape[-2:],
                                          mode='nearest').long()
                target, target_map = small.squeeze(1), small
            else:  # mmseg's resize to the labels, as two small products
                logits = resize_bilinear(logits, size, self.align_corners)
            weight = self.sampler.sample(logits, target_map) if self.sampler is not None \
                else None
            terms = self._loss_single(logits, target, weight)
            if i == len(preds) - 1:
                losses.update(terms)
                final = logits
            else:
                for k, v in terms.items():
                    losses[f'd{i}.{k}'] = v * self.aux_loss_weight
        losses['acc_seg'] = self._accuracy(final.detach(), label)
        return losses
