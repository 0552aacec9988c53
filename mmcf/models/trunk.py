"""The decoder trunk that every ClusterFormer head runs (§3.3).

This is the one sketch of the decoder pipeline; the heads' and the decoder's
docstrings point here. :class:`ClusterDecoderTrunk` turns the backbone's
maps ``I^1..I^4`` and last-stage cluster centers ``E`` into decoded centers
and per-pixel features::

    F, {I^l} = PixelDecoder(I^1..I^4)         # F: stride-4 per-pixel features
    X^l      = tokens(I^l) [+ PE(I^l) + e_l]   # feat_pos: sine position, level embedding
    C^0      = CenterQueryInit(E | free | ...) # K centers (Table 6f, `center_init`)
    for l in 1..L:                             # ClusterTransformerDecoder (decoder.py)
        A   = RCA^l(LN(X^(l mod 3)), C^(l-1) + P [, log mask prior])   # Eq. 4, T iterations
        C   = LN(C^(l-1) + Drop(Proj(A)))      # A still holds C + P: P enters the content
        C   = LN(C + SelfAttn(q=C + P, k=C + P, v=C))
        C^l = LN(C + FFN(C))
    head_l   = predictions(LN_out(C^l), F)     # class scores, masks, boxes (each head)

``P`` is the learned per-center position (``query_pos``); ``LN_out`` the
out-norm the heads' predictions read. The optional mask prior (the
detection heads' ``assign_prior='mask'``) is computed by the decoder from
the head's mask embedding: ``log sigmoid <MLP(LN_out(C^(l-1))), F>``
resized to the level. The semantic head
(:class:`~mmcf.models.segmentation.ClusterFormerHead`) puts class scores on
top, the detection and panoptic heads
(:class:`~mmcf.models.detection.center_head.ClusterFormerCenterHead`) class,
mask and box predictions. A head gives the protocol of
:mod:`mmcf.visualization.protocol` through :class:`RecordsThroughTrunk`.
"""
from __future__ import annotations

import copy
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from torch import Tensor

from .decoder import CenterQueryInit, ClusterTransformerDecoder
from .recording import AssignmentRecorder
from .utils import loads_pretrained


def build_pixel_decoder(cfg: Optional[dict], in_channels: Sequence[int], dim: int,
                        registry) -> nn.Module:
    """Build a pixel decoder from its config, filling in the backbone's
    ``in_channels`` and the head's width ``dim`` as ``feat_channels`` and
    ``out_channels``; widths that the config sets to anything else are
    refused. mmdet's decoders are found by their mmdet name from mmseg too
    (``'MSDeformAttnPixelDecoder'`` is ``'mmdet.MSDeformAttnPixelDecoder'``
    there), and they read their sub-configs as attributes, hence the
    ``ConfigDict``."""
    cfg = ConfigDict(copy.deepcopy(cfg or dict(type='MSDeformAttnPixelDecoder')))
    kind = cfg.get('type')
    if isinstance(kind, str) and '.' not in kind and registry.get(kind) is None:
        cfg['type'] = 'mmdet.' + kind
    cfg.update(in_channels=list(in_channels))
    for key in ('feat_channels', 'out_channels'):
        cfg.setdefault(key, dim)
        if cfg[key] != dim:
            raise ValueError(f'pixel_decoder {key} ({cfg[key]}) must equal the head\'s '
                             f'width ({dim})')
    return registry.build(cfg)


class TrunkOutput(NamedTuple):
    """What :meth:`ClusterDecoderTrunk.forward` returns.

    ``centers``: the initial centers, then every decoder layer's (B, K, D),
    not normed (the LAST is final); ``assignments``: None for the initial
    centers, then each layer's last assignment map (B, heads, K, h*w), or
    None when not asked for; ``shapes``: the (h, w) each entry clustered
    (the coarsest level for the initial centers); ``mask_feature``: the
    stride-4 per-pixel features F (B, D, H/4, W/4); ``levels``: the
    clustered maps ``I^l`` (B, D, h, w), coarse to fine.
    """
    centers: List[Tensor]
    assignments: List[Optional[Tensor]]
    shapes: List[Tuple[int, int]]
    mask_feature: Tensor
    levels: List[Tensor]


class ClusterDecoderTrunk(AssignmentRecorder, BaseModule):
    """Pixel decoder, initial centers, position embedding, ClusterFormer
    decoder, out-norm and assignment recorder of a head (module docstring).

    **Pixel decoder.** Any OpenMMLab pixel decoder that returns
    ``(mask_feature, extra)``; ``in_channels``, ``feat_channels`` and
    ``out_channels`` are filled in:

    * multi-scale, e.g. mmdet's ``MSDeformAttnPixelDecoder`` (default, as
      Mask2Former's): ``extra`` is its list of maps (strides 32, 16, 8), used
      as the ``I^l`` of Eq. 4;
    * single-output, e.g. the FPN-style ``PixelDecoder``: the ``I^l`` are
      made, as Eq. 4 says, by average pooling the stride-4 ``mask_feature``
      to ``num_levels`` coarser maps (strides 32, 16, 8 for 3).

    **Decoder.** ``transformer_decoder`` configures a
    :class:`~mmcf.models.decoder.ClusterTransformerDecoder`; layer ``l``
    clusters level ``l mod L`` (coarse to fine, round robin). ``query_pos``
    is the learned per-center embedding ``P`` the layers add. With
    ``feat_pos`` the clustered tokens carry a sine position encoding plus a
    learned level embedding, as the keys of Mask2Former's cross-attention do
    (Eq. 4 is silent on positions; a box regressor needs to know where its
    cluster lies).

    Args:
        in_channels: channels of the backbone maps that ``in_index`` selects.
        dim: decoder width D (a head's ``channels`` in mmseg, ``feat_channels``
            in mmdet).
        num_centers: K.
        registry: the owner's model registry (mmseg's or mmdet's), which
            builds the pixel decoder.
        in_index: backbone outputs used as maps (the centers, when present,
            are always the backbone's last output).
        pixel_decoder: config of the pixel decoder (see above).
        num_levels: pooled levels for a single-output pixel decoder.
        transformer_decoder: ``dict(num_layers=6, layer_cfg=dict(...))``.
        center_init: Table 6f, see :class:`~mmcf.models.decoder.CenterQueryInit`.
        encoder_channels: width of the encoder centers (default: the last of
            ``in_channels``).
        num_encoder_centers: K_enc of the backbone (100 for tiny / small).
        feat_pos: position and level embeddings on the clustered tokens.
        record_assignments: 'none' | 'last' | 'all': in eval mode, record each
            decoder layer's assignment maps and cluster health
            (:mod:`mmcf.models.recording`).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 dim: int,
                 num_centers: int,
                 registry,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 pixel_decoder: Optional[dict] = None,
                 num_levels: int = 3,
                 transformer_decoder: Optional[dict] = None,
                 center_init: str = 'encoder',
                 encoder_channels: Optional[int] = None,
                 num_encoder_centers: int = 100,
                 feat_pos: bool = False,
                 record_assignments: str = 'last',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(in_index):
            raise ValueError(f'in_channels {list(in_channels)} and in_index {list(in_index)} '
                             'must have the same length')
        D = dim
        self.in_channels = list(in_channels)
        self.in_index = list(in_index)
        self.dim = D
        self.feat_pos = feat_pos
        self.pixel_decoder = build_pixel_decoder(pixel_decoder, self.in_channels, D, registry)
        # mmdet's MSDeformAttnPixelDecoder (and its kin) return multi-scale
        # maps; FPN-style decoders return (mask_feature, memory)
        self.multi_scale_decoder = hasattr(self.pixel_decoder, 'num_encoder_levels')
        if not self.multi_scale_decoder and num_levels < 1:
            raise ValueError(f'num_levels must be >= 1, got {num_levels}')
        self.num_levels = (self.pixel_decoder.num_encoder_levels
                           if self.multi_scale_decoder else num_levels)
        if feat_pos:
            from mmdet.models.layers import SinePositionalEncoding
            self.positional_encoding = SinePositionalEncoding(num_feats=D // 2, normalize=True)
            self.level_embed = nn.Embedding(self.num_levels, D)
        self.query_init = CenterQueryInit(
            center_init, num_centers, D,
            encoder_channels=encoder_channels or self.in_channels[-1],
            num_encoder_centers=num_encoder_centers)
        self.query_pos = nn.Embedding(num_centers, D)
        transformer_decoder = dict(transformer_decoder or {})
        self.transformer_decoder = ClusterTransformerDecoder(D, **transformer_decoder)
        self.num_layers = self.transformer_decoder.num_layers
        norm_cfg = dict(transformer_decoder.get('layer_cfg') or {}).get('norm_cfg')
        self.out_norm = build_norm_layer(norm_cfg or dict(type='LN'), D)[1]
        self.init_assignment_recording(self.transformer_decoder.rca_modules,
                                       self.transformer_decoder.num_iters, record_assignments)

    def reset_parameters(self) -> None:
        """Xavier for the decoder's matrices (as Mask2Former's decoder), the
        level embedding N(0, 1), and the Table 6f init of the centers."""
        self.transformer_decoder.reset_parameters()
        if self.feat_pos:
            nn.init.normal_(self.level_embed.weight)
        self.query_init.reset_parameters()

    # ---------------------------------------------------------------- inputs
    def split_inputs(self, inputs: Sequence[Tensor], owner: str = 'the head'
                     ) -> Tuple[List[Tensor], Optional[Tensor]]:
        """The backbone maps ``in_index`` selects and the encoder centers
        (the last output when it is (B, K, C)), checked against
        ``in_channels``."""
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise TypeError(f'{owner} expects the tuple of backbone outputs')
        centers = inputs[-1] if inputs[-1].dim() == 3 else None
        num_maps = len(inputs) - (centers is not None)
        if max(self.in_index) >= num_maps:
            raise ValueError(f'{owner} reads backbone maps {self.in_index}, the backbone '
                             f'returned {num_maps} (out_indices=(0, 1, 2, 3) gives four)')
        maps = [inputs[i] for i in self.in_index]
        for j, (i, m, ch) in enumerate(zip(self.in_index, maps, self.in_channels)):
            if m.dim() != 4:
                raise ValueError(
                    f'backbone output {i} has shape {tuple(m.shape)}, not an NCHW map: '
                    'in_index must select the feature maps (the centers are read from '
                    'the last output)')
            if m.shape[1] != ch:
                raise ValueError(f'backbone output {i} has {m.shape[1]} channels, {owner} '
                                 f'was built with in_channels[{j}]={ch}')
        return maps, centers

    def pixel_decode(self, maps: List[Tensor], batch_img_metas: Optional[List[dict]] = None
                     ) -> Tuple[Tensor, List[Tensor]]:
        """The stride-4 features F and the levels ``I^l``, coarse to fine."""
        if self.multi_scale_decoder:
            mask_feature, levels = self.pixel_decoder(maps)
            return mask_feature, list(levels)
        mask_feature, _ = self.pixel_decoder(maps, self._decoder_metas(maps, batch_img_metas))
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

    def tokens(self, level: Tensor, index: int) -> Tensor:
        """(B, D, h, w) -> (B, h*w, D), with position and level embedding
        when ``feat_pos``."""
        tokens = level.flatten(2).transpose(1, 2)
        if self.feat_pos:
            mask = level.new_zeros((level.shape[0], ) + level.shape[-2:], dtype=torch.bool)
            pos = self.positional_encoding(mask).flatten(2).transpose(1, 2)
            tokens = tokens + pos.to(tokens.dtype) + self.level_embed.weight[index]
        return tokens

    # --------------------------------------------------------------- forward
    def forward(self, inputs: Sequence[Tensor], batch_img_metas: Optional[List[dict]] = None,
                mask_embed: Optional[Callable[[Tensor], Tensor]] = None,
                return_maps: bool = False, owner: str = 'the head') -> TrunkOutput:
        """Run the pixel decoder and the decoder layers on the backbone's
        outputs (:class:`TrunkOutput`).

        ``mask_embed``, optional: the head's mask embedding (normed centers
        to (B, K, D) embeddings); given, every layer's E-steps take the mask
        prior of the centers it starts from, computed by the decoder (module
        docstring). ``return_maps``: the head reads the layers' assignment
        maps (else the fused E/M step writes none).
        """
        maps, enc_centers = self.split_inputs(inputs, owner)
        mask_feature, levels = self.pixel_decode(maps, batch_img_metas)
        B = mask_feature.shape[0]
        centers = self.query_init(enc_centers, levels[0])
        pos = self.query_pos.weight.unsqueeze(0).expand(B, -1, -1).to(centers.dtype)
        decoder = self.transformer_decoder
        level_shapes = [tuple(lvl.shape[-2:]) for lvl in levels]
        shapes = [level_shapes[decoder.level_index(i, len(levels))]
                  for i in range(self.num_layers)]
        self.set_assignment_shapes(shapes)
        out = TrunkOutput([centers], [None], [level_shapes[0]] + shapes, mask_feature, levels)
        tokens = [self.tokens(lvl, j) for j, lvl in enumerate(levels)]
        def embed(c: Tensor) -> Tensor:  # what the head's masks read: LN_out(C)
            return mask_embed(self.out_norm(c))

        for _, centers, assign in decoder(
                tokens, centers, pos, level_shapes, mask_feature,
                embed if mask_embed is not None else None, return_maps=return_maps):
            out.centers.append(centers)
            out.assignments.append(assign)
        return out


class RecordsThroughTrunk:
    """The cluster-assignment protocol of a head
    (:mod:`mmcf.visualization.protocol`: ``record_assignments``,
    ``num_stages``, ``num_iters``, ``assignment_maps``) and its
    ``cluster_health``, read from its :class:`ClusterDecoderTrunk`
    (``self.trunk``). One "stage" is one decoder layer."""

    @property
    def record_assignments(self) -> str:
        return self.trunk.record_assignments

    @record_assignments.setter
    def record_assignments(self, mode: str) -> None:
        self.trunk.record_assignments = mode

    @property
    def num_stages(self) -> int:
        return self.trunk.num_stages

    @property
    def num_iters(self) -> int:
        return self.trunk.num_iters

    def assignment_maps(self, stage: int = -1, block: int = -1, iteration: int = -1,
                        hard: bool = True) -> Tensor:
        return self.trunk.assignment_maps(stage, block, iteration, hard)

    def cluster_health(self, per_block: bool = False) -> list:
        return self.trunk.cluster_health(per_block)


class TrunkHeadMixin(RecordsThroughTrunk):
    """What every head that owns a :class:`ClusterDecoderTrunk` does the same
    way: the recording protocol through its trunk, and ``init_weights`` runs
    the head's ``_reset_parameters`` (unless a ``Pretrained`` ``init_cfg``
    loads weights) and then the stock ``init_weights`` (which initialises the
    pixel decoder). Put it first among the bases."""

    def init_weights(self) -> None:
        if not loads_pretrained(self.init_cfg):
            self._reset_parameters()
        super().init_weights()
