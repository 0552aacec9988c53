"""The ClusterFormer decoder pieces shared by every downstream head (§3.3).

* :class:`ClusterDecoderLayer` - one decoder layer: an RCA layer of Eq. 4
  (recurrent cross-attention clustering, Eq. 3, over one level of pixel
  features), then self-attention among the centers and an FFN.
* :class:`CenterQueryInit` - the initial decoder centers of Table 6f: from
  the encoder's cluster centers, free parameters, or direct feature
  embedding (Eq. 5 on the pixel features).

Semantic segmentation (class centers) and detection / instance / panoptic
segmentation (instance centers) build their decoders from these two.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmengine.model import BaseModule
from torch import Tensor

from .clustering import CenterInit, RecurrentClustering

CENTER_INITS = ('encoder', 'free', 'feature')


class ClusterDecoderLayer(BaseModule):
    """One decoder layer: recurrent cross-attention clustering, then
    self-attention among the centers and an FFN (post-norm, as Mask2Former).

    ::

        C = LN(C + Drop(Proj(RCA(LN(I), C + P))))   # Eq. 4, T iterations
        C = LN(C + SelfAttn(C + P, C + P, C))
        C = LN(C + FFN(C))

    ``P`` is a learned per-center embedding (the "query position") that keeps
    the identity of each center. RCA returns the clustered centers of its
    last M-step (Eq. 3); the residual keeps the center identity across layers.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int = 8,
                 head_dim: int = 32,
                 num_iters: int = 3,
                 ffn_channels: int = 2048,
                 dropout: float = 0.0,
                 center_update: str = 'recurrent',
                 m_step: str = 'mean',
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='LN')
        self.feat_norm = build_norm_layer(norm_cfg, dim)[1]
        self.clustering = RecurrentClustering(
            dim, head_dim=head_dim, num_iters=num_iters, update=center_update,
            m_step=m_step)
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

    def forward(self, feats: Tensor, centers: Tensor, pos: Tensor
                ) -> Tuple[Tensor, Tensor]:
        """``feats`` (B, N, D) pixel tokens of one level, ``centers`` and
        ``pos`` (B, K, D). Returns the new centers and the last assignment
        map ``M`` (B, heads, K, N)."""
        clustered, maps = self.clustering(self.feat_norm(feats), centers + pos)
        centers = self.norm1(centers + self.cluster_drop(self.cluster_proj(clustered)))
        centers = self.norm2(self.self_attn(centers, query_pos=pos, key_pos=pos))
        centers = self.norm3(self.ffn(centers))
        return centers, maps[-1]


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
    * ``'free'`` ("free parameters"): a learned (K, D) table, the same for
      every image (DETR / Mask2Former queries).
    * ``'feature'`` ("direct feature embedding"): Eq. 5,
      ``FFN(AdaptivePool_K(I))`` of a pixel-feature map (the coarsest level).

    Args:
        mode: 'encoder' | 'free' | 'feature'.
        num_centers: K.
        dim: decoder width D.
        encoder_channels: C_enc (mode 'encoder').
        num_encoder_centers: K_enc (mode 'encoder').
    """

    def __init__(self, mode: str, num_centers: int, dim: int,
                 encoder_channels: Optional[int] = None,
                 num_encoder_centers: int = 100):
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
        elif mode == 'free':
            self.center_feat = nn.Embedding(num_centers, dim)
        else:
            self.center_init_ffn = CenterInit(dim, num_centers, ffn_ratio=1.0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A variance-preserving init of the encoder-center map ``W``."""
        if self.mode == 'encoder':
            nn.init.normal_(self.center_mix, std=self.num_encoder_centers ** -0.5)

    def forward(self, enc_centers: Optional[Tensor], coarse: Tensor) -> Tensor:
        """``enc_centers`` (B, K_enc, C_enc) or None; ``coarse`` (B, D, h, w)
        the coarsest pixel-feature map (its batch size is the output's)."""
        B = coarse.shape[0]
        if self.mode == 'free':
            return self.center_feat.weight.unsqueeze(0).expand(B, -1, -1)
        if self.mode == 'feature':
            tokens = coarse.flatten(2).transpose(1, 2)
            return self.center_init_ffn(tokens, coarse.shape[-2:])
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
