"""The ClusterFormer encoder (§3.2, §3.3; Eq. 3, 5, 6)."""
from __future__ import annotations

from copy import deepcopy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed, PatchMerging
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from ..clustering import (CenterInit, FeatureDispatch, RecurrentClustering, build_clustering,
                          clustering_num_iters, refuse_clustering_kwargs)
from ..recording import AssignmentRecorder
from ..utils import loads_pretrained, quiet_init_report


class ClusterBlock(BaseModule):
    """One ClusterFormer block (Fig. 2a).

    ::

        x_n = LN(x)
        C0  = CenterInit(x_n)                  # Eq. 5
        C,M = Clustering(x_n, C0)              # Eq. 3, T iterations
        x   = x + DropPath(Dispatch(x_n, C))   # Eq. 6
        x   = x + DropPath(FFN(LN(x)))         # transformer FFN

    ``clustering_cfg`` builds the clustering layer
    (:func:`~mmcf.models.clustering.build_clustering`; its ``type`` chooses
    the rows of Table 6c, its ``head_dim`` with ``num_heads`` those of 6d);
    ``with_clustering=False`` keeps ``C = C0`` (no center update) and
    ``with_dispatch=False`` leaves the features untouched by the centers: the
    two switches of Table 6a. ``dispatch_mode`` chooses the rows of Table 6e.
    The forward returns the new features and the block's centers.
    """

    def __init__(self,
                 dim: int,
                 num_centers: int = 100,
                 num_heads: Optional[int] = None,
                 clustering_cfg: Optional[dict] = None,
                 mlp_ratio: float = 4.,
                 center_ffn_ratio: float = 0.25,
                 dispatch_mlp_ratio: float = 0.25,
                 center_init_residual: bool = True,
                 dispatch_sim: str = 'cosine',
                 dispatch_mode: str = 'eq6',
                 with_clustering: bool = True,
                 with_dispatch: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg)
        refuse_clustering_kwargs(type(self).__name__, kwargs)
        norm_cfg = norm_cfg or dict(type='LN')
        self.with_cp = with_cp
        self.with_clustering = with_clustering
        self.with_dispatch = with_dispatch
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.center_init = CenterInit(dim, num_centers, center_ffn_ratio,
                                      residual=center_init_residual)
        self.clustering = build_clustering(clustering_cfg, dim, num_heads) \
            if with_clustering else None
        self.dispatch = FeatureDispatch(
            dim, dispatch_mlp_ratio, dispatch_sim, dispatch_mode) if with_dispatch else None
        if with_dispatch and self.dispatch.needs_assignment and not with_clustering:
            raise ValueError(f"dispatch_sim={dispatch_sim!r} / dispatch_mode={dispatch_mode!r} "
                             'reads the assignment map: it needs with_clustering=True')
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
    """Optional 2x2 patch merging (stride x2) followed by ``depth`` blocks."""

    def __init__(self,
                 in_dim: int,
                 dim: int,
                 depth: int,
                 downsample: bool,
                 block_cfgs: Sequence[dict],
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='LN')
        self.downsample = PatchMerging(
            in_channels=in_dim, out_channels=dim, norm_cfg=norm_cfg) if downsample else None
        self.blocks = ModuleList([ClusterBlock(dim=dim, norm_cfg=norm_cfg, **cfg)
                                  for cfg in block_cfgs])
        assert len(self.blocks) == depth

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]
                ) -> Tuple[torch.Tensor, Tuple[int, int], torch.Tensor]:
        """The stage's features, their (H, W) and its last block's centers."""
        if self.downsample is not None:
            x, hw = self.downsample(x, hw)
            hw = tuple(hw)
        for block in self.blocks:
            x, centers = block(x, hw)
        return x, hw, centers


class ClusterFormer(AssignmentRecorder, BaseModule):
    """ClusterFormer backbone: a universal vision encoder built on clustering.

    Four hierarchical stages as in Swin (§3.3): a 4x4 patch embedding, then
    2x2 patch merging before stages 2-4, strides 4/8/16/32. Every block runs
    center initialisation (Eq. 5), recurrent cross-attention clustering
    (Eq. 3) and feature dispatching (Eq. 6), see :class:`ClusterBlock`.

    Any input size works: the patch embedding and each merging pad the map at
    its bottom/right corner (like Swin), so a stage of stride ``s`` returns
    ``ceil(H / s) x ceil(W / s)`` for an ``H x W`` input. Clustering is global
    over the whole map (no windows), so no size needs to divide by 32.

    Outputs: a tuple of NCHW maps for ``out_indices``, normed, exactly as
    Swin returns them. With ``out_centers=True`` the last stage's cluster
    centers ``(B, K, C)`` (normed) are appended as the last element.

    Explainability: after a forward in eval mode, :meth:`assignment_maps`
    returns each stage's cluster assignment maps (Fig. 3) without re-running
    the model (``record_assignments``: 'last' keeps the last iteration of each
    stage's last block, 'all' every block and iteration, 'none' nothing), and
    :meth:`cluster_health` the per-stage health of the clustering (entropy /
    log K of the E-step, relative spread of the centers, centers in use).

    Args:
        arch: a name from ``arch_zoo`` or a dict with ``embed_dims`` (int,
            doubled every stage, or a list of 4) and ``depths``; it may also
            set ``num_centers``, ``head_dim``, ``num_heads`` (per stage),
            ``mlp_ratio``.
        in_channels: input channels.
        num_centers: K, centers per block (100 in §4.1.1).
        clustering_cfg: the clustering layer of every block, one dict with
            one name per option from here to the E-step
            (:func:`~mmcf.models.clustering.build_clustering`): ``type``
            ('RecurrentClustering', Eq. 3, default; the Table 6c rows
            'CosineClustering', 'VanillaCrossAttention',
            'CrissCrossClustering', 'KMeansClustering'), ``num_iters`` (T, 3,
            Table 6b), ``head_dim`` (width of a head's query and key, 32,
            Table 6d; default: the arch's), ``logits``, ``logit_scale``,
            ``m_step``, ``residual``, ``proj_init``, ``qkv_bias``, ``fused``,
            ``chunk_rows``; see
            :class:`~mmcf.models.clustering.RecurrentClustering`. The named
            archs fix the heads per stage (``num_heads``), so ``head_dim``
            changes each head's width and the parameters grow with it, as in
            Table 6d. The defaults and the measurements behind them:
            docs/en/clustering.md.
        num_heads: heads per stage (an int or one per stage); default: the
            arch's ``num_heads``, or ``width // head_dim`` for a custom arch
            dict without it (the width split into heads of ``head_dim``).
        center_init_residual: Eq. 5 as ``P + FFN(P)`` (default True; False
            is the literal ``FFN(P)``), see
            :class:`~mmcf.models.clustering.CenterInit`.
        dispatch_sim: 'cosine' or 'assignment', see
            :class:`~mmcf.models.clustering.FeatureDispatch`.
        dispatch_mode: 'eq6' (default), 'fc', 'confidence' [68] or
            'fc_sim' [58] (Table 6e, see
            :class:`~mmcf.models.clustering.FeatureDispatch`).
        with_clustering / with_dispatch: Table 6a switches.
        center_ffn_ratio / dispatch_mlp_ratio: hidden widths of the Eq. 5
            FFN and the Eq. 6 MLP; the paper does not give them (0.25: the
            parameter counts closest to Table 1's, docs/en/analysis.md).
        out_indices: stages whose maps are returned.
        out_centers: also return the last stage's centers.
        drop_rate, drop_path_rate: FFN dropout and stochastic depth (linearly
            increasing over blocks).
        frozen_stages: freeze the patch embedding and stages ``< frozen_stages``
            (-1: nothing frozen).
        norm_eval: keep BatchNorm layers in eval mode while training.
        with_cp: gradient checkpointing of each block.
        record_assignments: 'none' | 'last' | 'all'.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 6, 2],
                                            num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=96, depths=[2, 2, 18, 2],
                                             num_heads=[3, 6, 12, 24])),
        # a few-thousand-parameter model for tests and CPU demos
        **dict.fromkeys(['test'], dict(embed_dims=32, depths=[1, 1, 2, 1],
                                       num_centers=16, head_dim=16,
                                       num_heads=[2, 4, 8, 16])),
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 num_centers: Optional[int] = None,
                 clustering_cfg: Optional[dict] = None,
                 num_heads: Optional[Union[int, Sequence[int]]] = None,
                 mlp_ratio: Optional[float] = None,
                 center_ffn_ratio: float = 0.25,
                 dispatch_mlp_ratio: float = 0.25,
                 center_init_residual: bool = True,
                 dispatch_sim: str = 'cosine',
                 dispatch_mode: str = 'eq6',
                 with_clustering: bool = True,
                 with_dispatch: bool = True,
                 out_indices: Sequence[int] = (3, ),
                 out_centers: bool = False,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: Optional[dict] = None,
                 record_assignments: str = 'last',
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg)
        refuse_clustering_kwargs('ClusterFormer', kwargs)
        self.arch_settings = self._parse_arch(arch)
        dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        clustering_cfg = dict(clustering_cfg or {})
        if 'num_heads' in clustering_cfg:
            raise ValueError('ClusterFormer: clustering_cfg must not set num_heads; the '
                             'heads are set per stage by the arch or num_heads=')
        if clustering_cfg.get('head_dim') is None:
            clustering_cfg['head_dim'] = self.arch_settings.get('head_dim', 32)
        head_dim = clustering_cfg['head_dim']
        # None means "the arch's value"; 0 or less is refused, not replaced
        for name, value in (('num_centers', num_centers),
                            ('clustering_cfg.head_dim', head_dim),
                            ('clustering_cfg.num_iters', clustering_cfg.get('num_iters'))):
            if value is not None and (not isinstance(value, int) or value <= 0):
                hint = '' if name.endswith('num_iters') else ' (or None for the arch default)'
                raise ValueError(f'ClusterFormer: {name} must be a positive int{hint}, got '
                                 f'{value!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'ClusterFormer: drop_path_rate must be in [0, 1), got '
                             f'{drop_path_rate!r}')
        num_centers = num_centers if num_centers is not None else \
            self.arch_settings.get('num_centers', 100)
        mlp_ratio = mlp_ratio or self.arch_settings.get('mlp_ratio', 4.)
        norm_cfg = norm_cfg or dict(type='LN')

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out_indices = [i + self.num_stages if i < 0 else i for i in out_indices]
        for i in out_indices:
            if not 0 <= i < self.num_stages:
                raise ValueError(f'out_indices {i} is out of range 0..{self.num_stages - 1}')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in -1..{self.num_stages}, got {frozen_stages}')
        num_heads = num_heads if num_heads is not None else self.arch_settings.get('num_heads')
        if num_heads is None:  # the width split into heads of head_dim
            for d in dims:
                if d % head_dim:
                    raise ValueError(f'embed_dims {dims} must be multiples of head_dim '
                                     f'{head_dim} (or give num_heads)')
            num_heads = [d // head_dim for d in dims]
        elif isinstance(num_heads, int):
            num_heads = [num_heads] * self.num_stages
        num_heads = list(num_heads)
        if len(num_heads) != self.num_stages or any(
                not isinstance(h, int) or h < 1 or d % h for h, d in zip(num_heads, dims)):
            raise ValueError(f'num_heads {num_heads} must give {self.num_stages} head counts '
                             f'that divide embed_dims {dims}')

        self.in_channels = in_channels
        self.embed_dims = dims
        self.num_features = dims
        self.num_centers = num_centers
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.out_indices = tuple(out_indices)
        self.out_centers = out_centers
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.patch_embed = PatchEmbed(
            in_channels=in_channels, embed_dims=dims[0], conv_type='Conv2d',
            kernel_size=4, stride=4, padding='corner', norm_cfg=norm_cfg)
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        total = sum(depths)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, total)]
        block_common = dict(
            num_centers=num_centers, clustering_cfg=clustering_cfg, mlp_ratio=mlp_ratio,
            center_ffn_ratio=center_ffn_ratio, dispatch_mlp_ratio=dispatch_mlp_ratio,
            center_init_residual=center_init_residual, dispatch_sim=dispatch_sim,
            dispatch_mode=dispatch_mode, with_clustering=with_clustering,
            with_dispatch=with_dispatch, drop_rate=drop_rate, with_cp=with_cp)
        self.stages = ModuleList()
        start = 0
        for i, depth in enumerate(depths):
            cfgs = [dict(block_common, num_heads=num_heads[i], drop_path_rate=dpr[start + j])
                    for j in range(depth)]
            start += depth
            self.stages.append(ClusterStage(
                in_dim=dims[i - 1] if i else dims[0], dim=dims[i], depth=depth,
                downsample=i > 0, block_cfgs=cfgs, norm_cfg=norm_cfg))
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, dims[i])[1])
        if out_centers:
            self.norm_centers = build_norm_layer(norm_cfg, dims[-1])[1]
        self.init_assignment_recording(
            [[blk.clustering for blk in stage.blocks] for stage in self.stages],
            clustering_num_iters(clustering_cfg), record_assignments)
        self._freeze_stages()

    # ------------------------------------------------------------------ set-up
    @classmethod
    def arch_out_channels(cls, arch: Union[str, dict] = 'tiny',
                          out_indices: Sequence[int] = (0, 1, 2, 3)) -> List[int]:
        """Channels of the maps the backbone returns for ``out_indices``:
        what a neck's ``in_channels`` must be when ClusterFormer replaces
        another backbone (tiny and small: 96, 192, 384, 768 as Swin-T/S;
        ``test``: 32, 64, 128, 256)::

            >>> ClusterFormer.arch_out_channels('tiny', (1, 2, 3))
            [192, 384, 768]
        """
        dims = cls._parse_arch(arch)['embed_dims']
        out = []
        for i in out_indices:
            if not -cls.num_stages <= i < cls.num_stages:
                raise ValueError(f'out_indices {i} is out of range 0..{cls.num_stages - 1}')
            out.append(dims[i])
        return out

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise KeyError(f'Unknown ClusterFormer arch {arch!r}; choose one of '
                               f'{sorted(set(cls.arch_zoo))} or pass a dict with '
                               "'embed_dims' and 'depths'")
            settings = deepcopy(cls.arch_zoo[key])
        elif isinstance(arch, dict):
            missing = {'embed_dims', 'depths'} - set(arch)
            if missing:
                raise KeyError(f'Custom ClusterFormer arch misses keys {sorted(missing)}')
            settings = deepcopy(arch)
        else:
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        dims = settings['embed_dims']
        if isinstance(dims, int):
            dims = [dims * 2 ** i for i in range(cls.num_stages)]
        dims, depths = list(dims), list(settings['depths'])
        if len(dims) != cls.num_stages or len(depths) != cls.num_stages:
            raise ValueError(f'arch needs {cls.num_stages} embed_dims and depths, '
                             f'got {dims} and {depths}')
        if min(depths) < 1:
            raise ValueError(f'every stage needs depth >= 1, got {depths}')
        settings.update(embed_dims=dims, depths=depths)
        return settings

    def init_weights(self) -> None:
        with quiet_init_report():
            super().init_weights()
        if loads_pretrained(self.init_cfg):
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.)
        for m in self.modules():
            if isinstance(m, RecurrentClustering):
                m.reset_projections()

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.patch_embed.eval()
            for p in self.patch_embed.parameters():
                p.requires_grad = False
        for i in range(self.frozen_stages):
            stage = self.stages[i]
            stage.eval()
            for p in stage.parameters():
                p.requires_grad = False
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                norm.eval()
                for p in norm.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'ClusterFormer expects (B, {self.in_channels}, H, W) images, got a tensor of '
                f'shape {tuple(x.shape)}; convert grayscale/RGBA images to '
                f'{self.in_channels} channels (e.g. LoadImageFromFile(color_type="color")) or '
                f'set in_channels')
        x, hw = self.patch_embed(x)
        hw = tuple(hw)
        x = self.drop_after_pos(x)
        outs, hws = [], []
        for i, stage in enumerate(self.stages):
            x, hw, centers = stage(x, hw)
            hws.append(hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.transpose(1, 2).reshape(x.shape[0], -1, *hw).contiguous())
        self.set_assignment_shapes(hws)
        if self.out_centers:
            outs.append(self.norm_centers(centers))
        return tuple(outs)

    # --------------------------------------------------------- explainability
    # assignment_maps(stage, block, iteration, hard), cluster_health() and
    # record_assignments come from AssignmentRecorder (mmcf/models/recording.py).
