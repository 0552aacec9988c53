"""The blocks of the ClusterFormer encoder (§3.2, Fig. 2a): Eq. 5 -> Eq. 3 ->
Eq. 6 in :class:`ClusterBlock`, and the stage that stacks them."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN, PatchMerging
from mmengine.model import BaseModule, ModuleList

from ..clustering import (CenterInit, FeatureDispatch, build_clustering, build_from_cfg,
                          refuse_old_options)


class ClusterBlock(BaseModule):
    """One ClusterFormer block (Fig. 2a).

    ::

        x_n = LN(x)
        C0  = CenterInit(x_n)                  # Eq. 5
        C,M = Clustering(x_n, C0)              # Eq. 3, T iterations
        x   = x + DropPath(Dispatch(x_n, C))   # Eq. 6
        x   = x + DropPath(FFN(LN(x)))         # transformer FFN

    Each equation's module takes its options as one dict, passed through
    unchanged and declared once, in the module's class:
    ``center_init_cfg`` builds :class:`~mmcf.models.clustering.CenterInit`
    (Eq. 5: ``ffn_ratio``, ``residual``), ``clustering_cfg`` the clustering
    layer (Eq. 3, :func:`~mmcf.models.clustering.build_clustering`: its
    ``type`` chooses the rows of Table 6c, its ``head_dim`` with
    ``num_heads`` those of 6d) and ``dispatch_cfg``
    :class:`~mmcf.models.clustering.FeatureDispatch` (Eq. 6: ``mlp_ratio``,
    ``sim``, ``mode``; ``mode`` chooses the rows of Table 6e).
    ``with_clustering=False`` keeps ``C = C0`` (no center update) and
    ``with_dispatch=False`` leaves the features untouched by the centers: the
    two switches of Table 6a. The forward returns the new features and the
    block's centers.
    """

    def __init__(self,
                 dim: int,
                 num_centers: int,
                 num_heads: Optional[int] = None,
                 clustering_cfg: Optional[dict] = None,
                 center_init_cfg: Optional[dict] = None,
                 dispatch_cfg: Optional[dict] = None,
                 mlp_ratio: float = 4.,
                 with_clustering: bool = True,
                 with_dispatch: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg)
        refuse_old_options(type(self).__name__, kwargs)
        norm_cfg = norm_cfg or dict(type='LN')
        self.with_cp = with_cp
        self.with_clustering = with_clustering
        self.with_dispatch = with_dispatch
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.center_init = build_from_cfg(CenterInit, center_init_cfg, 'center_init_cfg',
                                          dim=dim, num_centers=num_centers)
        self.clustering = build_clustering(clustering_cfg, dim, num_heads) \
            if with_clustering else None
        self.dispatch = build_from_cfg(FeatureDispatch, dispatch_cfg, 'dispatch_cfg',
                                       dim=dim) if with_dispatch else None
        if with_dispatch and self.dispatch.needs_assignment and not with_clustering:
            raise ValueError(f'dispatch_cfg={dispatch_cfg!r} reads the assignment map: it '
                             'needs with_clustering=True')
        drop_path = dict(type='DropPath', drop_prob=drop_path_rate)
        self.drop_path = build_dropout(drop_path) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.ffn = FFN(
            embed_dims=dim,
            feedforward_channels=int(dim * mlp_ratio),
            num_fcs=2,
            ffn_drop=drop_rate,
            dropout_layer=drop_path,
            act_cfg=dict(type='GELU'),
            add_identity=True)

    def _forward(self, x: torch.Tensor, hw: Tuple[int, int]
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        x_n = self.norm1(x)
        centers = self.center_init(x_n, hw)
        maps: List[torch.Tensor] = []
        if self.clustering is not None:
            # the maps are written only when the dispatch reads them (or
            # recording asks); the fused E/M step skips them otherwise
            centers, maps = self.clustering(
                x_n, centers, hw=hw,
                return_maps=self.dispatch is not None and self.dispatch.needs_assignment)
        if self.dispatch is not None:
            x = x + self.drop_path(self.dispatch(x_n, centers, maps[-1] if maps else None))
        x = self.ffn(self.norm2(x), identity=x)
        return x, centers

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The new features (B, N, D) and the block's centers (B, K, D)."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, hw, use_reentrant=False)
        return self._forward(x, hw)


class ClusterStage(BaseModule):
    """Optional 2x2 patch merging (stride x2) followed by one
    :class:`ClusterBlock` per entry of ``drop_path_rates``; ``block_cfg``
    (``num_centers``, ``num_heads``, the three option dicts, ...) goes to
    every block unchanged."""

    def __init__(self,
                 in_dim: int,
                 dim: int,
                 downsample: bool,
                 drop_path_rates: Sequence[float],
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **block_cfg):
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='LN')
        self.downsample = PatchMerging(
            in_channels=in_dim, out_channels=dim, norm_cfg=norm_cfg) if downsample else None
        self.blocks = ModuleList([
            ClusterBlock(dim=dim, drop_path_rate=rate, norm_cfg=norm_cfg, **block_cfg)
            for rate in drop_path_rates])

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]
                ) -> Tuple[torch.Tensor, Tuple[int, int], torch.Tensor]:
        """The stage's features, their (H, W) and its last block's centers."""
        if self.downsample is not None:
            x, hw = self.downsample(x, hw)
            hw = tuple(hw)
        for block in self.blocks:
            x, centers = block(x, hw)
        return x, hw, centers
