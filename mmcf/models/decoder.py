"""The ClusterFormer decoder pieces shared by every downstream head (§3.3).

* :class:`ClusterDecoderLayer` - one decoder layer: an RCA layer of Eq. 4
  (recurrent cross-attention clustering, Eq. 3, over one level of pixel
  features), then self-attention among the centers and an FFN.
* :class:`ClusterTransformerDecoder` - the stack of decoder layers and the
  decoding loop every head runs, built from one nested config
  ``transformer_decoder=dict(num_layers=6, layer_cfg=dict(...))`` (the
  shape of mmdet's ``Mask2FormerHead`` config).
* :class:`CenterQueryInit` - the initial decoder centers of Table 6f: from
  the encoder's cluster centers, free parameters, direct feature embedding
  (Eq. 5 on the pixel features), mixed query selection (DINO) or
  scene-adaptive embedding.

Every head runs them through one trunk, :class:`~mmcf.models.trunk.
ClusterDecoderTrunk`: class centers for semantic segmentation, instance
centers for detection, instance and panoptic segmentation. The pipeline,
with where the positions enter, is sketched once, in :mod:`mmcf.models.trunk`.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from .clustering import CenterInit, build_clustering, refuse_old_options

CENTER_INITS = ('encoder', 'free', 'feature', 'mixed_selection', 'scene_adaptive')


class ClusterDecoderLayer(BaseModule):
    """One decoder layer: recurrent cross-attention clustering, then
    self-attention among the centers and an FFN (post-norm, as Mask2Former).

    ::

        A = RCA(LN(X), C + P)                       # Eq. 4: T iterations from C + P
        C = LN(C + Drop(Proj(A)))
        C = LN(C + SelfAttn(q=C + P, k=C + P, v=C))
        C = LN(C + FFN(C))

    ``P`` is a learned per-center embedding (the "query position") that keeps
    the identity of each center. The RCA starts its EM iterations from ``C +
    P`` and returns the centers of its last M-step (Eq. 3); with the residual
    M-step (the default) ``A`` still holds ``C + P``, so the position enters
    the content stream through ``Proj(A)``, not only the queries.
    ``clustering_cfg`` builds the RCA exactly as the encoder's blocks build
    theirs (:func:`~mmcf.models.clustering.build_clustering`: ``type``,
    ``num_iters``, ``head_dim``, ``logits``, ``logit_scale``, ``m_step``,
    ``residual``, ``proj_init``, ``fused``, ...); the width is split into
    ``dim / head_dim`` heads. ``num_heads`` is the self-attention's.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int = 8,
                 ffn_channels: int = 2048,
                 dropout: float = 0.0,
                 clustering_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg)
        refuse_old_options('transformer_decoder.layer_cfg', kwargs)
        norm_cfg = norm_cfg or dict(type='LN')
        self.feat_norm = build_norm_layer(norm_cfg, dim)[1]
        self.clustering = build_clustering(clustering_cfg, dim)
        self.cluster_proj = nn.Linear(dim, dim)
        self.cluster_drop = nn.Dropout(dropout)
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.self_attn = MultiheadAttention(
            embed_dims=dim, num_heads=num_heads, attn_drop=dropout,
            proj_drop=dropout, batch_first=True)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.ffn = FFN(
            embed_dims=dim, feedforward_channels=ffn_channels, num_fcs=2,
            act_cfg=act_cfg or dict(type='ReLU', inplace=True),
            ffn_drop=dropout, add_identity=True)
        self.norm3 = build_norm_layer(norm_cfg, dim)[1]

    def forward(self, feats: Tensor, centers: Tensor, pos: Tensor,
                prior: Optional[Tensor] = None, return_maps: bool = True
                ) -> Tuple[Tensor, Optional[Tensor]]:
        """``feats`` (B, N, D) pixel tokens of one level, ``centers`` and
        ``pos`` (B, K, D), ``prior`` an optional (B, N, K) log prior of the
        E-step. Returns the new centers and the last assignment map ``M``
        (B, heads, K, N), or None with ``return_maps=False`` (the fused E/M
        step then writes no map, unless recording asks for one)."""
        clustered, maps = self.clustering(self.feat_norm(feats), centers + pos,
                                          prior=prior, return_maps=return_maps)
        centers = self.norm1(centers + self.cluster_drop(self.cluster_proj(clustered)))
        centers = self.norm2(self.self_attn(centers, query_pos=pos, key_pos=pos))
        centers = self.norm3(self.ffn(centers))
        return centers, maps[-1] if return_maps and maps else None


class CenterQueryInit(nn.Module):
    """Initial decoder centers ``C^0`` (B, K, D), Table 6f.

    * ``'encoder'`` ("centers from encoder", the paper's default): the
      backbone's last-stage centers ``E`` (B, K_enc, C_enc) are projected to
      the decoder width, ``P = LN(Linear(E))``, and mapped from the K_enc
      encoder centers to the K decoder centers by a learned linear map over
      the center axis, ``C^0 = W P`` with ``W`` (K, K_enc). Eq. 5 pools the
      encoder centers from a fixed grid, so encoder center ``j`` has the same
      meaning in every image and ``W`` can learn which encoder clusters feed
      which decoder center. ``C^0`` depends on the image through ``E``.
      ``W`` starts as a selection, so the decoder starts from the encoder's
      distinct centers rather than a random mix of them: the identity when
      K = K_enc, else decoder center ``k`` takes encoder center
      ``floor(k K_enc / K)`` (evenly spaced over the pooling grid), plus a
      small random term (std ``0.01 / sqrt(K_enc)``) when K > K_enc, so that
      centers that share an encoder center still differ.
    * ``'free'`` ("free parameters"): a learned (K, D) table, the same for
      every image (DETR / Mask2Former queries).
    * ``'feature'`` ("direct feature embedding"): Eq. 5,
      ``FFN(AdaptivePool_K(I))`` of a pixel-feature map (the coarsest level).
    * ``'mixed_selection'`` ("mixed query selection" [44], DINO's): the
      pixels of the coarsest pixel-decoder level are ranked by a learned
      score (a linear layer on each pixel feature; DINO ranks its encoder
      tokens by their best class score, this init does not see the classes,
      so the score is one class-agnostic logit), the top K are selected and
      give the *positional* part of the centers from their locations (the
      sine embedding of the pixel's normalised (x, y), DINO's anchor, through
      a two-layer MLP), while the *content* part stays a learned table, the
      same for every image: ``C^0_k = E_k + sigmoid(s_k) MLP(PE(xy_k))``.
      DINO trains the score with a loss on the encoder's proposals, which
      these heads do not have; the ``sigmoid(s_k)`` factor is its gradient
      path here. The decoder layers add the head's learned ``query_pos``
      every layer; the selected positions enter once, through ``C^0``. When
      the level has fewer pixels than K (small images), the ranked pixels
      are used in turn again (centers sharing a location differ by their
      content).
    * ``'scene_adaptive'`` ("scene-adaptive embedding" [47]): learned
      center embeddings adapted to the scene. [47] is not in the paper's
      text we have; the reading is the dynamic query combination of Cui et
      al. (2023): each center has ``r`` learned basic embeddings and mixes
      them with coefficients predicted from the image's global feature,
      ``C^0_k = sum_m softmax_m(W g + b)_{k,m} E_{k,m}`` with ``g`` the mean
      of the coarsest level's pixel features (``r = 4``).

    Args:
        mode: 'encoder' | 'free' | 'feature' | 'mixed_selection' |
            'scene_adaptive'.
        num_centers: K.
        dim: decoder width D.
        encoder_channels: C_enc (mode 'encoder').
        num_encoder_centers: K_enc (mode 'encoder').
        num_basis: r, basic embeddings per center (mode 'scene_adaptive').
    """

    def __init__(self, mode: str, num_centers: int, dim: int,
                 encoder_channels: Optional[int] = None,
                 num_encoder_centers: int = 100,
                 num_basis: int = 4):
        super().__init__()
        if mode not in CENTER_INITS:
            raise ValueError(f'center_init must be one of {CENTER_INITS}, got {mode!r}')
        self.mode = mode
        self.num_centers = num_centers
        self.num_encoder_centers = num_encoder_centers
        self.encoder_channels = encoder_channels
        if mode == 'encoder':
            if encoder_channels is None:
                raise ValueError("center_init='encoder' needs encoder_channels")
            self.center_proj = nn.Sequential(nn.Linear(encoder_channels, dim),
                                             nn.LayerNorm(dim))
            self.center_mix = nn.Parameter(torch.empty(num_centers, num_encoder_centers))
        elif mode in ('free', 'mixed_selection'):
            self.center_feat = nn.Embedding(num_centers, dim)  # (content) queries
            if mode == 'mixed_selection':
                self.select_score = nn.Linear(dim, 1)
                self.select_pos = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True),
                                                nn.Linear(dim, dim))
        elif mode == 'scene_adaptive':
            self.num_basis = num_basis
            self.center_basis = nn.Parameter(torch.empty(num_centers, num_basis, dim))
            self.center_coef = nn.Linear(dim, num_centers * num_basis)
        else:
            # Table 6f's "direct feature embedding" [17]: the literal Eq. 5
            self.feature_centers = CenterInit(dim, num_centers, ffn_ratio=1.0, residual=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The encoder-center map ``W`` starts as a selection of encoder
        centers (the identity when K = K_enc), see the class docstring; the
        scene-adaptive basis starts as N(0, 1) (as ``nn.Embedding``), its
        coefficient layer as ``nn.Linear`` does."""
        if self.mode == 'scene_adaptive':
            nn.init.normal_(self.center_basis)
            self.center_coef.reset_parameters()
        if self.mode != 'encoder':
            return
        K, K_enc = self.num_centers, self.num_encoder_centers
        with torch.no_grad():
            self.center_mix.zero_()
            source = (torch.arange(K) * K_enc) // K
            self.center_mix[torch.arange(K), source] = 1.0
            if K > K_enc:
                self.center_mix.add_(torch.randn_like(self.center_mix),
                                     alpha=0.01 * K_enc ** -0.5)

    def forward(self, enc_centers: Optional[Tensor], coarse: Tensor) -> Tensor:
        """``enc_centers`` (B, K_enc, C_enc) or None; ``coarse`` (B, D, h, w)
        the coarsest pixel-feature map (its batch size is the output's)."""
        B = coarse.shape[0]
        if self.mode == 'free':
            return self.center_feat.weight.unsqueeze(0).expand(B, -1, -1)
        if self.mode == 'feature':
            tokens = coarse.flatten(2).transpose(1, 2)
            return self.feature_centers(tokens, coarse.shape[-2:])
        if self.mode == 'mixed_selection':
            return self._mixed_selection(coarse)
        if self.mode == 'scene_adaptive':
            g = coarse.flatten(2).mean(dim=-1)  # (B, D) the scene's global feature
            coef = self.center_coef(g).view(B, self.num_centers, self.num_basis).softmax(-1)
            return torch.einsum('bkm,kmd->bkd', coef, self.center_basis.to(coef.dtype))
        if enc_centers is None:
            raise ValueError(
                "center_init='encoder' needs the encoder's cluster centers as the "
                'last backbone output: build ClusterFormer with out_centers=True '
                "(or choose center_init='free' or 'feature')")
        _, K_enc, C = enc_centers.shape
        if K_enc != self.num_encoder_centers or C != self.encoder_channels:
            raise ValueError(
                f'the backbone returned {K_enc} centers of width {C}; the head was built '
                f'for num_encoder_centers={self.num_encoder_centers} of width '
                f'encoder_channels={self.encoder_channels}')
        proj = self.center_proj(enc_centers)  # (B, K_enc, D)
        return torch.einsum('kj,bjd->bkd', self.center_mix.to(proj.dtype), proj)

    def _mixed_selection(self, coarse: Tensor) -> Tensor:
        """DINO's mixed query selection on the (B, D, h, w) level: learned
        content + the positional part of the top-K scored pixels."""
        from mmdet.models.layers.transformer.utils import coordinate_to_encoding
        B, D, h, w = coarse.shape
        tokens = coarse.flatten(2).transpose(1, 2)  # (B, N, D)
        scores = self.select_score(tokens).squeeze(-1)  # (B, N)
        N, K = h * w, self.num_centers
        top = scores.topk(min(K, N), dim=1).indices  # (B, min(K, N)), best first
        top = top[:, torch.arange(K, device=top.device) % top.shape[1]]  # (B, K)
        ys = (top // w).to(coarse.dtype).add(0.5).div(h)
        xs = (top % w).to(coarse.dtype).add(0.5).div(w)
        pos = coordinate_to_encoding(torch.stack([xs, ys], dim=-1), num_feats=D // 2)
        gate = torch.sigmoid(torch.gather(scores, 1, top)).unsqueeze(-1)
        content = self.center_feat.weight.unsqueeze(0).expand(B, -1, -1)
        return content + gate * self.select_pos(pos.to(coarse.dtype))


class ClusterTransformerDecoder(BaseModule):
    """The decoder of every ClusterFormer head (§3.3): ``num_layers``
    :class:`ClusterDecoderLayer` (6 in the paper), RCA layers not shared
    (§3.2). Layer ``l`` clusters pixel level ``l mod L`` (coarse to fine, in
    round robin), so the stack walks the feature hierarchy as Eq. 4 does.

    Built from one nested config, as mmdet's heads take theirs::

        transformer_decoder=dict(
            num_layers=6,
            layer_cfg=dict(num_heads=8, ffn_channels=2048, dropout=0.0,
                           clustering_cfg=dict(num_iters=3, head_dim=32)))

    ``layer_cfg`` holds any argument of :class:`ClusterDecoderLayer` but
    ``dim``, which is the head's width.

    Args:
        dim: decoder width D.
        num_layers: decoder layers.
        layer_cfg: arguments of every :class:`ClusterDecoderLayer`.
    """

    def __init__(self, dim: int, num_layers: int = 6, layer_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f'transformer_decoder.num_layers must be an integer >= 1, '
                             f'got {num_layers!r}')
        layer_cfg = dict(layer_cfg or {})
        if 'dim' in layer_cfg:
            raise ValueError('transformer_decoder.layer_cfg must not set dim: the decoder '
                             "width is the head's channels")
        self.num_layers = num_layers
        self.layers = ModuleList([ClusterDecoderLayer(dim, **layer_cfg)
                                  for _ in range(num_layers)])
        self.num_iters = self.layers[0].clustering.num_iters

    @property
    def rca_modules(self) -> List[nn.Module]:
        """The RCA of every layer, in order (what the assignment recorder reads)."""
        return [layer.clustering for layer in self.layers]

    def reset_parameters(self) -> None:
        """Xavier for the layers' matrices, as Mask2Former's decoder, then
        each RCA's ``proj_init`` (default ``'random'``: the Xavier init
        stays; ``'kmeans'`` starts the E-step as cosine k-means)."""
        for name, p in self.layers.named_parameters():
            # the E-step temperatures keep their set value (logit_scale)
            if p.dim() > 1 and not name.endswith('logit_scale'):
                nn.init.xavier_uniform_(p)
        for rca in self.rca_modules:
            rca.reset_projections()

    def level_index(self, layer: int, num_levels: int) -> int:
        """The pixel level that decoder layer ``layer`` clusters."""
        return layer % num_levels

    @staticmethod
    @torch.no_grad()
    def mask_prior(centers: Tensor, mask_feature: Tensor, mask_embed: Callable[[Tensor], Tensor],
                   size: Tuple[int, int]) -> Tensor:
        """The (B, h*w, K) E-step prior of the head's mask prior: ``log
        sigmoid`` of the masks ``<mask_embed(C_k), F_p>`` that ``centers``
        predict on the mask features ``F`` (B, D, H/4, W/4), resized to the
        level's ``size`` (h, w), detached."""
        masks = torch.einsum('bkd,bdhw->bkhw', mask_embed(centers), mask_feature)
        masks = F.interpolate(masks.float(), size=tuple(size), mode='bilinear',
                              align_corners=False)
        return F.logsigmoid(masks).flatten(2).transpose(1, 2)

    def forward(self, level_tokens: Sequence[Tensor], centers: Tensor, pos: Tensor,
                level_shapes: Optional[Sequence[Tuple[int, int]]] = None,
                mask_feature: Optional[Tensor] = None,
                mask_embed: Optional[Callable[[Tensor], Tensor]] = None,
                return_maps: bool = True
                ) -> Iterator[Tuple[int, Tensor, Optional[Tensor]]]:
        """Run the layers; yields ``(layer index, centers, last assignment
        map)`` after each layer, so a head predicts from every layer.

        ``level_tokens`` are the (B, N_l, D) pixel tokens of each level
        (with whatever positional terms the head adds), ``centers`` and
        ``pos`` (B, K, D). With ``mask_embed`` (the head's map from centers
        to mask embeddings), ``mask_feature`` and the levels' (h, w)
        ``level_shapes``, every layer's E-steps take the mask prior of the
        centers it starts from (:meth:`mask_prior`): ``softmax_k(S_ki + log
        sigmoid(m_k(i)))``. ``return_maps=False``: the head does not read the
        maps; None is yielded in their place and the fused E/M step writes
        none.
        """
        if mask_embed is not None and (mask_feature is None or level_shapes is None):
            raise ValueError('the mask prior needs mask_feature and level_shapes')
        for i, layer in enumerate(self.layers):
            level = self.level_index(i, len(level_tokens))
            prior = None if mask_embed is None else self.mask_prior(
                centers, mask_feature, mask_embed, level_shapes[level])
            centers, assign = layer(level_tokens[level], centers, pos, prior=prior,
                                    return_maps=return_maps)
            yield i, centers, assign
