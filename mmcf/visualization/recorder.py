"""The assignment protocol for decoder heads, as a mixin.

A head whose decoder layers each run one
:class:`~mmcf.models.clustering.RecurrentClustering` (RCA, Eq. 4) gets the
four members of :mod:`mmcf.visualization.protocol` with three lines::

    class MyHead(DecoderAssignmentRecorder, BaseModule):
        def __init__(self, ..., record_assignments='last'):
            ...
            self.init_assignment_recording(
                [layer.clustering for layer in self.layers], num_iters,
                record_assignments)

        def forward(self, ...):
            ...
            # (h, w) of the pixel map each decoder layer clusters
            self.set_assignment_shapes([lvl.shape[-2:] for lvl in per_layer_levels])

Recording uses forward hooks on the RCA modules, so the decoder layers stay
untouched: a pre-hook asks the RCA for every iteration's map
(``keep_all=True``) when ``'all'`` is recorded, and a post-hook keeps the
head-averaged, detached soft maps ``(B, K, N)`` in eval mode only. The hooks
are module-level functions that keep their state on the RCA module, so
copies of the model (EMA, ``deepcopy``) record into their own modules.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

RECORD_MODES = ('none', 'last', 'all')
_MODE = '_mmcf_record'
_MAPS = '_mmcf_assignments'


def _rca_pre_hook(module: nn.Module, args: tuple, kwargs: dict):
    if getattr(module, _MODE, 'none') == 'all' and not module.training:
        kwargs = dict(kwargs, keep_all=True)
    return args, kwargs


def _rca_post_hook(module: nn.Module, args: tuple, output) -> None:
    if getattr(module, _MODE, 'none') == 'none' or module.training:
        return
    maps = output[1]
    first = module.num_iters - len(maps)
    setattr(module, _MAPS, {first + t: m.detach().mean(dim=1) for t, m in enumerate(maps)})


class DecoderAssignmentRecorder:
    """Mixin giving a decoder head the cluster-assignment protocol
    (``record_assignments``, ``num_stages``, ``num_iters``,
    ``assignment_maps``), one "stage" per decoder layer; see the module
    docstring for the three lines a head adds."""

    def init_assignment_recording(self, rca_modules: Sequence[nn.Module], num_iters: int,
                                  mode: str = 'last') -> None:
        """Hook the RCA module of every decoder layer, in layer order."""
        # a plain list: the modules are registered (and saved) by the head
        self._assignment_rcas: List[nn.Module] = list(rca_modules)
        self._assignment_hw: List[Tuple[int, int]] = []
        self.num_iters = num_iters
        for rca in self._assignment_rcas:
            rca.register_forward_pre_hook(_rca_pre_hook, with_kwargs=True)
            rca.register_forward_hook(_rca_post_hook)
        self.record_assignments = mode

    def set_assignment_shapes(self, shapes: Sequence[Sequence[int]]) -> None:
        """(h, w) of the pixel map clustered by each decoder layer, this forward."""
        self._assignment_hw = [(int(s[-2]), int(s[-1])) for s in shapes]

    @property
    def num_stages(self) -> int:
        """Decoder layers: the "stages" of the assignment protocol."""
        return len(self._assignment_rcas)

    @property
    def record_assignments(self) -> str:
        return self._assignment_mode

    @record_assignments.setter
    def record_assignments(self, mode: str) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(f'record_assignments must be one of {RECORD_MODES}, got {mode!r}')
        self._assignment_mode = mode
        for rca in self._assignment_rcas:
            setattr(rca, _MODE, mode)
            setattr(rca, _MAPS, {})

    def assignment_maps(self, stage: int = -1, block: int = -1, iteration: int = -1,
                        hard: bool = True) -> Tensor:
        """Pixel-to-center assignment maps of decoder layer ``stage`` in the
        last eval forward: ``(B, H, W)`` center indices (``hard``) or
        ``(B, K, H, W)`` soft maps, at the size of the map that layer
        clusters. A layer has one RCA, so ``block`` is 0 or -1."""
        n = self.num_stages
        if not -n <= stage < n:
            raise IndexError(f'stage (decoder layer) {stage} is out of range for {n} layers')
        if block not in (0, -1):
            raise IndexError(f'block {block}: a decoder layer has a single RCA block (0 or -1)')
        stage %= n
        recorded: Dict[int, Tensor] = getattr(self._assignment_rcas[stage], _MAPS, {})
        if not recorded:
            raise RuntimeError('No assignment map recorded for this decoder layer: run an '
                               "eval forward first with record_assignments='last' or 'all'")
        it = iteration + self.num_iters if iteration < 0 else iteration
        if it not in recorded:
            raise IndexError(f'iteration {iteration} not recorded; kept: {sorted(recorded)} '
                             f"of T={self.num_iters} (record_assignments='all' keeps every one)")
        if stage >= len(self._assignment_hw):
            raise RuntimeError('the head did not report the clustered map sizes '
                               '(set_assignment_shapes) in its forward')
        soft = recorded[it]
        soft = soft.reshape(*soft.shape[:2], *self._assignment_hw[stage])
        return soft.argmax(dim=1) if hard else soft
