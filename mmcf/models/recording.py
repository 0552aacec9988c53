"""Cluster-assignment recording and cluster health, for the backbone and the heads.

Every clustering layer (:class:`~mmcf.models.clustering.RecurrentClustering`
and its Table 6c variants, "RCA") records itself through
:class:`ClusterRecords`: with its ``record`` set to ``'last'`` or ``'all'``
it keeps, in eval mode, references to its maps and centers, from which its
head-averaged soft maps and :func:`cluster_health` are made when read
(recording costs no work per forward).
:class:`AssignmentRecorder` groups the RCA modules of a model into
"stages" and gives the owner the protocol that the cluster-map tool, the
visualization hook and the health diagnostic read
(:mod:`mmcf.visualization.protocol`):

* the backbone: one stage per encoder stage, one RCA per block;
* a decoder head: one "stage" per decoder layer, one RCA each.

::

    class MyHead(AssignmentRecorder, BaseModule):
        def __init__(self, ..., record_assignments='last'):
            ...
            self.init_assignment_recording(
                [layer.clustering for layer in self.layers], num_iters,
                record_assignments)

        def forward(self, ...):
            ...
            # (h, w) of the pixel map each stage clusters
            self.set_assignment_shapes([lvl.shape[-2:] for lvl in per_layer_levels])

State lives on the RCA modules, so copies of the model (EMA, ``deepcopy``)
record into their own modules.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

RECORD_MODES = ('none', 'last', 'all')
HEALTH_KEYS = ('entropy', 'spread', 'used')


class ClusterRecords:
    """Recording state of one clustering layer (framework-free).

    The owner's :class:`AssignmentRecorder` sets ``record``; the layer calls
    :meth:`keep_records` at the end of a forward in eval mode
    (:attr:`recording`). Only references are kept (no copy, no work): the
    head-averaged maps (:attr:`assignments`) and :func:`cluster_health`
    (:attr:`health`) are made from them when read.
    """

    record: str = 'none'

    @property
    def recording(self) -> bool:
        """Whether this forward is recorded: ``record`` set, eval mode."""
        return self.record != 'none' and not self.training

    def clear_records(self) -> None:
        """Forget the recorded forward."""
        self._records: Optional[dict] = None
        self._assignments: Optional[Dict[int, Tensor]] = None
        self._health: Optional[Dict[str, float]] = None

    def keep_records(self, maps: List[Tensor], centers: Tensor) -> None:
        """Keep (detached) the maps (B, heads, K, N) of the last
        ``len(maps)`` EM iterations and the final centers (B, K, D)."""
        self._records = dict(first=self.num_iters - len(maps),
                             maps=[m.detach() for m in maps], centers=centers.detach())
        self._assignments = self._health = None

    @property
    def assignments(self) -> Dict[int, Tensor]:
        """The recorded head-averaged soft maps, EM iteration (0..T-1) ->
        (B, K, N); empty when nothing was recorded."""
        if self._records is None:
            return {}
        if self._assignments is None:
            first = self._records['first']
            self._assignments = {first + t: m.mean(dim=1)
                                 for t, m in enumerate(self._records['maps'])}
        return self._assignments

    @property
    def health(self) -> Optional[Dict[str, float]]:
        """:func:`cluster_health` of the recorded forward's last EM
        iteration, or None when nothing was recorded."""
        if self._records is None:
            return None
        if self._health is None:
            self._health = cluster_health(self._records['maps'][-1], self._records['centers'])
        return self._health


def cluster_health(assignment: torch.Tensor, centers: torch.Tensor) -> Dict[str, float]:
    """How much a clustering clusters: three numbers for one E-step.

    Args:
        assignment: the soft maps ``M`` (B, heads, K, N) of one E-step.
        centers: the centers (B, K, D) of the following M-step.

    Returns:
        ``entropy``: the mean over images, heads and pixels of the entropy of
        a pixel's assignment over the K centers divided by ``log K`` (1: the
        uniform E-step, every pixel shared equally; 0: hard assignments; 0
        for K = 1). Columns of ``M`` are normalised over K first, so the
        softmax-over-HW map of Eq. 1 is measured on the same footing.
        ``spread``: relative spread of the centers, ``sqrt(mean_k |c_k -
        c_bar|^2) / sqrt(mean_k |c_k|^2)`` per image, averaged: 0 when all K
        centers are one vector, 1 when their mean is zero.
        ``used``: how many centers win (arg-max of the head-averaged map) at
        least one pixel, averaged over images. ``num_centers``: K.
    """
    if assignment.dim() != 4 or centers.dim() != 3:
        raise ValueError(f'cluster_health expects maps (B, heads, K, N) and centers '
                         f'(B, K, D), got {tuple(assignment.shape)} and {tuple(centers.shape)}')
    m = assignment.double()
    K = m.shape[2]
    p = m / m.sum(dim=2, keepdim=True).clamp_min(1e-30)
    if K > 1:
        ent = -(p * p.clamp_min(1e-30).log()).sum(dim=2) / math.log(K)
        entropy = float(ent.mean())
    else:
        entropy = 0.0
    c = centers.double()
    dev = (c - c.mean(dim=1, keepdim=True)).pow(2).sum(-1).mean(-1)
    norm = c.pow(2).sum(-1).mean(-1)
    spread = float((dev / norm.clamp_min(1e-30)).sqrt().mean())
    winners = p.mean(dim=1).argmax(dim=1)  # (B, N)
    used = sum(int(torch.unique(w).numel()) for w in winners) / winners.shape[0]
    return dict(entropy=entropy, spread=spread, used=used, num_centers=K)


class AssignmentRecorder:
    """Mixin giving a module the cluster-assignment protocol
    (``record_assignments``, ``num_stages``, ``num_iters``,
    ``assignment_maps``) and :meth:`cluster_health`; see the module
    docstring."""

    def init_assignment_recording(
            self, stages: Sequence[Union[Optional[nn.Module], Sequence[Optional[nn.Module]]]],
            num_iters: int, mode: str = 'last') -> None:
        """Register the RCA modules, stage by stage (a bare module is a stage
        of one block; ``None`` entries, blocks without clustering, are kept
        so block indices stay those of the model)."""
        # plain lists: the modules are registered (and saved) by their owner
        self._assignment_stages: List[List[Optional[nn.Module]]] = [
            list(s) if isinstance(s, (list, tuple)) else [s] for s in stages]
        self._assignment_hw: List[Tuple[int, int]] = []
        self._assignment_iters = num_iters
        self.record_assignments = mode

    def set_assignment_shapes(self, shapes: Sequence[Sequence[int]]) -> None:
        """(h, w) of the pixel map clustered in each stage, this forward."""
        self._assignment_hw = [(int(s[-2]), int(s[-1])) for s in shapes]

    @property
    def num_stages(self) -> int:
        """Stages (decoder layers for a head) that ``assignment_maps`` addresses."""
        return len(self._assignment_stages)

    @property
    def num_iters(self) -> int:
        """T, the EM iterations of every RCA."""
        return self._assignment_iters

    @property
    def record_assignments(self) -> str:
        return self._assignment_mode

    @record_assignments.setter
    def record_assignments(self, mode: str) -> None:
        """'none' records nothing; 'last' the last EM iteration of each
        stage's last block; 'all' every block and iteration."""
        if mode not in RECORD_MODES:
            raise ValueError(f'record_assignments must be one of {RECORD_MODES}, got {mode!r}')
        self._assignment_mode = mode
        for blocks in self._assignment_stages:
            for j, rca in enumerate(blocks):
                if rca is None:
                    continue
                rca.record = mode if (mode == 'all' or j == len(blocks) - 1) else 'none'
                rca.clear_records()

    def _stage_blocks(self, stage: int) -> List[Optional[nn.Module]]:
        n = self.num_stages
        if not -n <= stage < n:
            raise IndexError(f'stage {stage} is out of range for {n} stages')
        return self._assignment_stages[stage % n]

    def assignment_maps(self, stage: int = -1, block: int = -1, iteration: int = -1,
                        hard: bool = True) -> Tensor:
        """Cluster assignment maps of the last eval forward (Fig. 3).

        Returns ``(B, H, W)`` center indices (``hard``, the arg-max over K)
        or ``(B, K, H, W)`` soft maps for the given stage (decoder layer),
        block and EM iteration (0..T-1, negative from the end), at that
        stage's feature size. Blocks other than a stage's last, and
        iterations other than the last, need ``record_assignments='all'``.
        """
        blocks = self._stage_blocks(stage)
        if not -len(blocks) <= block < len(blocks):
            raise IndexError(f'block {block} is out of range for a stage of {len(blocks)} '
                             'block(s)')
        rca = blocks[block]
        recorded: Dict[int, Tensor] = getattr(rca, 'assignments', None) or {}
        if not recorded:
            raise RuntimeError(
                'No assignment map recorded for this block: run an eval forward first, with '
                "record_assignments='last' (a stage's last block, last iteration) or 'all'"
                + ('' if rca is not None else ' (this block has no clustering)'))
        it = iteration + self.num_iters if iteration < 0 else iteration
        if it not in recorded:
            raise IndexError(f'iteration {iteration} not recorded; kept: {sorted(recorded)} '
                             f"of 0..{self.num_iters - 1} (record_assignments='all' keeps "
                             'every one)')
        s = stage % self.num_stages
        if s >= len(self._assignment_hw):
            raise RuntimeError('the module did not report the clustered map sizes '
                               '(set_assignment_shapes) in its forward')
        soft = recorded[it]
        soft = soft.reshape(*soft.shape[:2], *self._assignment_hw[s])
        return soft.argmax(dim=1) if hard else soft

    def cluster_health(self, per_block: bool = False) -> List[Dict[str, float]]:
        """Cluster health of the last eval forward, one dict per stage.

        Each dict holds, for the last EM iteration,
        :func:`cluster_health`'s ``entropy``
        (mean entropy / log K), ``spread`` (relative spread of the centers)
        and ``used`` (centers winning at least one pixel), averaged over the
        stage's recorded blocks (only the last with ``'last'``, every block
        with ``'all'``), plus ``num_centers`` and ``blocks`` (how many were
        averaged). ``per_block=True`` adds ``'per_block'``, the list of each
        recorded block's own figures.
        """
        out = []
        for s, blocks in enumerate(self._assignment_stages):
            figures = [rca.health for rca in blocks
                       if rca is not None and getattr(rca, 'health', None)]
            if not figures:
                raise RuntimeError(
                    f'No cluster health recorded for stage {s}: run an eval forward with '
                    "record_assignments='last' or 'all' first")
            entry: Dict[str, float] = {k: sum(f[k] for f in figures) / len(figures)
                                       for k in HEALTH_KEYS}
            entry.update(num_centers=figures[-1]['num_centers'], blocks=len(figures))
            if per_block:
                entry['per_block'] = [dict(f) for f in figures]
            out.append(entry)
        return out


def stage_unit(source: str) -> str:
    """What a source's "stages" are called: 'stage' for the backbone (found
    under an attribute path containing 'backbone'), 'layer' for a decoder
    head."""
    return 'stage' if 'backbone' in source else 'layer'


def format_health(health: Dict[str, List[Dict[str, float]]]) -> str:
    """A text table of ``{source: cluster_health()}`` for logs and tools:
    one row per backbone stage or decoder layer."""
    lines = [f'{"source":<16} {"where":<8} {"entropy/logK":>12} {"spread":>7} {"used/K":>9}']
    for source, stages in health.items():
        unit = stage_unit(source)
        for i, h in enumerate(stages):
            used = f'{h["used"]:.1f}/{h["num_centers"]}'
            lines.append(f'{source:<16} {unit + " " + str(i):<8} {h["entropy"]:>12.3f} '
                         f'{h["spread"]:>7.3f} {used:>9}')
    return '\n'.join(lines)
