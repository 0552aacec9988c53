"""Cluster-assignment recording and cluster health, for the backbone and the heads.

Every :class:`~mmcf.models.clustering.RecurrentClustering` (RCA) records
itself: with its ``record`` set to ``'last'`` or ``'all'`` it keeps, in eval
mode, references to its maps and centers, from which its head-averaged soft
maps and :func:`~mmcf.models.clustering.cluster_health` are made when read
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

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from torch import Tensor

RECORD_MODES = ('none', 'last', 'all')
HEALTH_KEYS = ('entropy', 'spread', 'used')


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
        :func:`~mmcf.models.clustering.cluster_health`'s ``entropy``
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
