"""The ClusterFormer encoder (§3.2, §3.3; Eq. 3, 5, 6)."""
from __future__ import annotations

from copy import deepcopy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from ..clustering import (RecurrentClustering, clustering_default, clustering_num_iters,
                          refuse_old_options)
from ..recording import AssignmentRecorder
from ..utils import loads_pretrained, quiet_init_report
from .cluster_block import ClusterStage


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
            set ``num_centers``, ``head_dim``, ``num_heads`` (per stage) and
            ``mlp_ratio`` (the blocks' FFN, 4).
        in_channels: input channels.
        num_centers: K, centers per block (default: the arch's, else 100 as
            in §4.1.1).
        num_heads: heads per stage (an int or one per stage); default: the
            arch's ``num_heads``, or ``width // head_dim`` for a custom arch
            dict without it (the width split into heads of ``head_dim``).
        clustering_cfg: Eq. 3, the clustering layer of every block
            (:func:`~mmcf.models.clustering.build_clustering`; ``type`` picks
            Table 6c's row, ``head_dim`` defaults to the arch's). The
            named archs fix the heads per stage, so ``head_dim`` changes
            each head's width and the parameters grow with it (Table 6d).
        center_init_cfg: Eq. 5, options of
            :class:`~mmcf.models.clustering.CenterInit`.
        dispatch_cfg: Eq. 6, options of
            :class:`~mmcf.models.clustering.FeatureDispatch` (``mode``:
            Table 6e).
        with_clustering / with_dispatch: Table 6a switches.
        out_indices: stages whose maps are returned.
        out_centers: also return the last stage's centers.
        drop_rate, drop_path_rate: FFN dropout and stochastic depth (linearly
            increasing over blocks).
        frozen_stages: freeze the patch embedding and stages ``< frozen_stages``
            (-1: nothing frozen).
        norm_eval: keep BatchNorm layers in eval mode while training.
        with_cp: gradient checkpointing of each block.
        norm_cfg: the norm layers (LN).
        record_assignments: 'none' | 'last' | 'all'.

    The three option dicts and their defaults, with the measurements behind
    them: docs/en/clustering.md.
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
                 num_heads: Optional[Union[int, Sequence[int]]] = None,
                 clustering_cfg: Optional[dict] = None,
                 center_init_cfg: Optional[dict] = None,
                 dispatch_cfg: Optional[dict] = None,
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
        if 'mlp_ratio' in kwargs:
            raise TypeError(f"ClusterFormer: mlp_ratio= is an arch setting; pass "
                            f"arch=dict(..., mlp_ratio={kwargs['mlp_ratio']!r})")
        refuse_old_options('ClusterFormer', kwargs)
        self.arch_settings = self._parse_arch(arch)
        dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        clustering_cfg = self._clustering_cfg(clustering_cfg, num_centers)
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'ClusterFormer: drop_path_rate must be in [0, 1), got '
                             f'{drop_path_rate!r}')
        num_centers = num_centers if num_centers is not None else \
            self.arch_settings.get('num_centers', 100)
        norm_cfg = norm_cfg or dict(type='LN')
        out_indices = self._check_indices(out_indices, frozen_stages)
        self.head_dim = clustering_default(clustering_cfg, 'head_dim')
        num_heads = self._stage_heads(num_heads, dims, self.head_dim)

        self.in_channels = in_channels
        self.embed_dims = dims
        self.num_features = dims
        self.num_centers = num_centers
        self.num_heads = num_heads
        self.out_indices = tuple(out_indices)
        self.out_centers = out_centers
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.patch_embed = PatchEmbed(
            in_channels=in_channels, embed_dims=dims[0], conv_type='Conv2d',
            kernel_size=4, stride=4, padding='corner', norm_cfg=norm_cfg)
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]
        block_cfg = dict(
            num_centers=num_centers, clustering_cfg=clustering_cfg,
            center_init_cfg=center_init_cfg, dispatch_cfg=dispatch_cfg,
            with_clustering=with_clustering, with_dispatch=with_dispatch,
            drop_rate=drop_rate, with_cp=with_cp)
        if 'mlp_ratio' in self.arch_settings:
            block_cfg['mlp_ratio'] = self.arch_settings['mlp_ratio']
        self.stages = ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.stages.append(ClusterStage(
                in_dim=dims[i - 1] if i else dims[0], dim=dims[i], downsample=i > 0,
                drop_path_rates=dpr[start:start + depth], norm_cfg=norm_cfg,
                num_heads=num_heads[i], **block_cfg))
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, dims[i])[1])
        if out_centers:
            self.norm_centers = build_norm_layer(norm_cfg, dims[-1])[1]
        self.init_assignment_recording(
            [[blk.clustering for blk in stage.blocks] for stage in self.stages],
            clustering_num_iters(clustering_cfg), record_assignments)
        self._freeze_stages()

    def _clustering_cfg(self, cfg: Optional[dict], num_centers: Optional[int]) -> dict:
        """The blocks' ``clustering_cfg``: the arch's ``head_dim`` unless the
        config sets one; positive ints checked (None means "the arch's
        value"; 0 or less is refused, not replaced)."""
        cfg = dict(cfg or {})
        if 'num_heads' in cfg:
            raise ValueError('ClusterFormer: clustering_cfg must not set num_heads; the '
                             'heads are set per stage by the arch or num_heads=')
        if cfg.get('head_dim') is None and 'head_dim' in self.arch_settings:
            cfg['head_dim'] = self.arch_settings['head_dim']
        for name, value in (('num_centers', num_centers),
                            ('clustering_cfg.head_dim', cfg.get('head_dim')),
                            ('clustering_cfg.num_iters', cfg.get('num_iters'))):
            if value is not None and (not isinstance(value, int) or value <= 0):
                hint = '' if name.endswith('num_iters') else ' (or None for the arch default)'
                raise ValueError(f'ClusterFormer: {name} must be a positive int{hint}, got '
                                 f'{value!r}')
        return cfg

    def _check_indices(self, out_indices: Union[int, Sequence[int]], frozen_stages: int
                       ) -> List[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out_indices = [i + self.num_stages if i < 0 else i for i in out_indices]
        for i in out_indices:
            if not 0 <= i < self.num_stages:
                raise ValueError(f'out_indices {i} is out of range 0..{self.num_stages - 1}')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in -1..{self.num_stages}, got {frozen_stages}')
        return out_indices

    def _stage_heads(self, num_heads: Optional[Union[int, Sequence[int]]], dims: List[int],
                     head_dim: int) -> List[int]:
        """Heads per stage: ``num_heads``, else the arch's, else the widths
        split into heads of ``head_dim``."""
        num_heads = num_heads if num_heads is not None else self.arch_settings.get('num_heads')
        if num_heads is None:
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
        return num_heads

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
