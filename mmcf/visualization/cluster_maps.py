"""Run a model on a batch and draw its cluster assignment maps (Fig. 3).

Shared by ``tools/visualize_clusters.py`` and
:class:`~mmcf.visualization.ClusterMapVisualizationHook`. Works with any
OpenMMLab model (mmpretrain classifier, mmseg segmentor, mmdet detector) whose
modules follow :mod:`mmcf.visualization.protocol`: the model runs once in
``mode='tensor'`` with recording switched on, and each source's maps are read
back with ``assignment_maps``.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..models.recording import stage_unit
from .protocol import find_assignment_sources
from .render import cluster_palette, contact_sheet, render_assignment_panel

RANDOM_WEIGHTS_NOTE = 'RANDOM WEIGHTS'


@dataclass
class ClusterMap:
    """Hard assignment maps of one source, stage, block and EM iteration.

    ``labels`` is ``(B, h, w)`` (arg-max center per cell, on the CPU);
    ``stage``, ``block`` and ``iteration`` are as asked (``stage`` and
    ``iteration`` made non-negative); ``num_centers`` is K.
    """

    source: str
    stage: int
    block: int
    iteration: int
    num_iters: int
    num_centers: int
    labels: Tensor

    @property
    def unit(self) -> str:
        """'stage' for an encoder, 'layer' for a decoder head."""
        return stage_unit(self.source)

    @property
    def key(self) -> str:
        """A file-name friendly identifier, e.g. ``backbone_stage3_it2``
        (iterations count from 0, as ``--iteration`` does)."""
        name = self.source.replace('.', '_')
        return f'{name}_{self.unit}{self.stage}_it{self.iteration}'

    def title(self, index: int, note: str = '') -> str:
        labels = self.labels[index]
        used = int(torch.unique(labels).numel())
        text = (f'{self.source} {self.unit} {self.stage} it {self.iteration} '
                f'(0..{self.num_iters - 1}): {labels.shape[0]}x{labels.shape[1]}, '
                f'{used}/{self.num_centers} centers')
        return f'{text} | {note}' if note else text


def _non_negative(index: int, length: int, what: str, source: str) -> int:
    if not -length <= index < length:
        raise IndexError(f'{what} {index} is out of range for {source}, which has {length} '
                         f'{what}s (valid: {-length}..{length - 1})')
    return index % length


@contextmanager
def recording(sources: Mapping[str, nn.Module], mode: str = 'all') -> Iterator[None]:
    """Set ``record_assignments`` of every source, restoring it afterwards."""
    before = {name: src.record_assignments for name, src in sources.items()}
    try:
        for src in sources.values():
            src.record_assignments = mode
        yield
    finally:
        for name, src in sources.items():
            src.record_assignments = before[name]


def read_cluster_maps(sources: Mapping[str, nn.Module],
                      stages: Optional[Sequence[int]] = None,
                      block: int = -1,
                      iteration: int = -1) -> List[ClusterMap]:
    """Read the recorded maps of each source for ``stages`` (default: all)."""
    maps = []
    for name, src in sources.items():
        n_stages, n_iters = int(src.num_stages), int(src.num_iters)
        it = _non_negative(iteration, n_iters, 'iteration', name)
        for stage in (range(n_stages) if stages is None else stages):
            s = _non_negative(stage, n_stages, 'stage', name)
            try:
                soft = src.assignment_maps(stage=s, block=block, iteration=it, hard=False)
            except IndexError as err:
                raise IndexError(f'{name} stage {s}, block {block}, iteration {it}: '
                                 f'{err}') from err
            maps.append(ClusterMap(name, s, block, it, n_iters, int(soft.shape[1]),
                                   soft.argmax(dim=1).cpu()))
    return maps


def _bare_model(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, 'module') and isinstance(
        getattr(model, 'module'), nn.Module) else model


def read_cluster_health(sources: Mapping[str, nn.Module]) -> Dict[str, List[Dict[str, float]]]:
    """``{source: source.cluster_health()}`` of the last recorded forward
    (per stage / decoder layer: entropy / log K, center spread, centers in
    use; see :meth:`mmcf.models.recording.AssignmentRecorder.cluster_health`)."""
    return {name: src.cluster_health() for name, src in sources.items()
            if hasattr(src, 'cluster_health')}


@contextmanager
def recorded_forward(model: nn.Module, data: dict,
                     sources: Optional[Sequence[str]] = None
                     ) -> Iterator[Tuple[Dict[str, nn.Module], Tuple[int, int]]]:
    """Run ``model`` once on a collated batch in eval mode with every
    source recording every block (``'all'``), and yield the sources and the
    ``(H, W)`` of the (padded) batch while their records are readable; the
    recording modes and the training mode are restored afterwards.

    ``model`` is an OpenMMLab model with a ``data_preprocessor`` (wrappers
    such as DDP are unwrapped); ``data`` a collated batch,
    ``dict(inputs=[CHW uint8 tensors], data_samples=[...] | None)``, as a
    dataloader gives it; ``sources`` the attribute paths to read (default:
    all, see :func:`~mmcf.visualization.find_assignment_sources`).
    """
    model = _bare_model(model)
    found = find_assignment_sources(model, sources)
    if not found:
        raise ValueError(f'{type(model).__name__} has no module that records cluster '
                         'assignments (see mmcf.visualization.protocol)')
    was_training = model.training
    model.eval()
    try:
        with recording(found, 'all'), torch.no_grad():
            batch = model.data_preprocessor(data, False)
            model(batch['inputs'], batch.get('data_samples'), mode='tensor')
            yield found, tuple(batch['inputs'].shape[-2:])
    finally:
        model.train(was_training)


def compute_cluster_maps(model: nn.Module,
                         data: dict,
                         sources: Optional[Sequence[str]] = None,
                         stages: Optional[Sequence[int]] = None,
                         block: int = -1,
                         iteration: int = -1,
                         return_health: bool = False):
    """Run ``model`` on a collated batch and return its cluster maps
    (see :func:`recorded_forward` for the arguments).

    Args:
        stages, block, iteration: which maps; negative indices count from
            the end.
        return_health: also return the cluster health of the same forward
            (:func:`read_cluster_health`, every block recorded).

    Returns:
        The maps and the ``(H, W)`` of the (padded) batch the model saw, and
        with ``return_health`` the health ``{source: [per stage]}``.
    """
    with recorded_forward(model, data, sources) as (found, batch_hw):
        maps = read_cluster_maps(found, stages, block, iteration)
        health = read_cluster_health(found) if return_health else None
    return (maps, batch_hw, health) if return_health else (maps, batch_hw)


def compute_cluster_health(model: nn.Module, data: dict,
                           sources: Optional[Sequence[str]] = None
                           ) -> Dict[str, List[Dict[str, float]]]:
    """Run ``model`` on a collated batch and return only its cluster health,
    ``{source: [per stage]}``, every block recorded (no maps are drawn)."""
    with recorded_forward(model, data, sources) as (found, _):
        return read_cluster_health(found)


def tensor_to_rgb(image: Tensor, bgr: bool = True) -> np.ndarray:
    """A CHW uint8 image tensor (as packed by the pipelines) as HWC RGB."""
    array = image.detach().cpu().numpy()
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f'expected a (3, H, W) image, got shape {tuple(array.shape)}')
    array = array.transpose(1, 2, 0)
    if bgr:
        array = array[..., ::-1]
    return np.ascontiguousarray(array.clip(0, 255).astype(np.uint8))


def render_cluster_maps(images: Sequence[np.ndarray],
                        maps: Sequence[ClusterMap],
                        batch_hw: Tuple[int, int],
                        palettes: Optional[Mapping[str, np.ndarray]] = None,
                        note: str = '',
                        alpha: float = 0.5,
                        panel_size: Optional[int] = 256
                        ) -> List[Tuple[Dict[str, np.ndarray], np.ndarray]]:
    """Panels and a contact sheet per image.

    Args:
        images: ``(H, W, 3)`` uint8 RGB images, as they entered the model
            before batch padding.
        maps: from :func:`compute_cluster_maps`.
        batch_hw: the padded batch size, to cut the padding off the maps.
        palettes: colours per source (e.g. the data set's class palette for a
            head with class centers); others get :func:`cluster_palette`.
        note: appended to every title (e.g. ``'RANDOM WEIGHTS'``).

    Returns:
        For each image: ``({map key: panel}, contact sheet)``.
    """
    palettes = dict(palettes or {})
    out = []
    for i, image in enumerate(images):
        valid = (image.shape[0] / batch_hw[0], image.shape[1] / batch_hw[1])
        panels = {}
        for m in maps:
            palette = palettes.get(m.source)
            if palette is None:
                palette = cluster_palette(m.num_centers)
            panels[m.key] = render_assignment_panel(
                image, m.labels[i].numpy(), m.title(i, note), palette, alpha,
                panel_size, valid)
        sheet_title = 'cluster assignment maps (arg-max center per pixel)'
        out.append((panels, contact_sheet(list(panels.values()),
                                          f'{sheet_title} | {note}' if note else sheet_title)))
    return out
