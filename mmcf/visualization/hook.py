"""A runner hook that logs cluster assignment maps at each validation."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..models.recording import format_health, stage_unit
from .cluster_maps import compute_cluster_maps, render_cluster_maps, tensor_to_rgb


@HOOKS.register_module()
class ClusterMapVisualizationHook(Hook):
    """Draw the cluster assignment maps (Fig. 3) of a few fixed validation
    images after every validation and log them through the runner's
    visualizer (its backends: ``LocalVisBackend`` PNG files under
    ``<work_dir>/<timestamp>/vis_data/vis_image/``, TensorBoard, ...).

    The same validation images (``indices`` of the validation data set, after
    its pipeline) are drawn each time, so the maps can be compared across
    training. For every image one contact sheet is logged as
    ``cluster_maps_img{index}`` with one row per source and stage (see
    :mod:`mmcf.visualization.protocol`: the backbone's stages, a decode
    head's layers); ``log_panels`` also logs each row on its own. The step is
    the runner's training iteration.

    **Cluster health** of the same forward is logged too (``log_health``):
    per source and stage, the mean entropy of the E-step over K divided by
    log K, the relative spread of the centers and how many centers win a
    pixel (:meth:`mmcf.models.recording.AssignmentRecorder.cluster_health`)
    as a table in the log and as scalars ``cluster_health/<source>.<stage
    or layer><i>.<entropy|spread|used>`` through the visualizer. A stage
    whose centers have collapsed (entropy / log K above ``collapse_entropy``
    and spread below ``collapse_spread``) is named in a warning, so collapse
    is seen while it happens.

    Registered in mmengine's root ``HOOKS``, so ``custom_hooks`` of
    mmpretrain, mmdet and mmseg configs build it (their registries are
    children of the root)::

        custom_hooks = [dict(type='ClusterMapVisualizationHook', num_images=2)]

    Args:
        num_images: how many validation images, ``0..num_images-1``.
        indices: explicit data set indices instead of ``num_images``.
        sources: attribute paths of the sources to draw (default: all, e.g.
            ``['backbone', 'decode_head']``).
        stages: stage (decoder layer) indices (default: all).
        block: block index within a stage (-1: the last).
        iteration: EM iteration (-1: the last).
        interval: draw at every ``interval``-th validation.
        alpha: weight of the map in the overlay tile.
        panel_size: longer side of each tile in pixels.
        log_panels: also log every (source, stage) panel separately.
        class_palette: colour a decode head's class-center maps with the data
            set's ``palette`` (class colours) when it has one per center.
        log_health: log the cluster health (see above).
        collapse_entropy / collapse_spread: the thresholds of the warning.
    """

    priority = 'LOW'

    def __init__(self,
                 num_images: int = 2,
                 indices: Optional[Sequence[int]] = None,
                 sources: Optional[Sequence[str]] = None,
                 stages: Optional[Sequence[int]] = None,
                 block: int = -1,
                 iteration: int = -1,
                 interval: int = 1,
                 alpha: float = 0.5,
                 panel_size: int = 192,
                 log_panels: bool = False,
                 class_palette: bool = True,
                 log_health: bool = True,
                 collapse_entropy: float = 0.99,
                 collapse_spread: float = 0.01):
        if indices is None:
            if num_images < 1:
                raise ValueError(f'num_images must be >= 1, got {num_images}')
            indices = list(range(num_images))
        if not indices or any(int(i) < 0 for i in indices):
            raise ValueError(f'indices must be non-negative data set indices, got {indices}')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.indices = [int(i) for i in indices]
        self.sources = list(sources) if sources is not None else None
        self.stages = list(stages) if stages is not None else None
        self.block = block
        self.iteration = iteration
        self.interval = interval
        self.alpha = alpha
        self.panel_size = panel_size
        self.log_panels = log_panels
        self.class_palette = class_palette
        self.log_health = log_health
        self.collapse_entropy = collapse_entropy
        self.collapse_spread = collapse_spread
        self._validations = 0

    def _batch(self, runner) -> dict:
        dataloader = runner.val_loop.dataloader
        dataset = dataloader.dataset
        if max(self.indices) >= len(dataset):
            raise IndexError(f'ClusterMapVisualizationHook: index {max(self.indices)} is out '
                             f'of range for the validation set of {len(dataset)} images')
        return dataloader.collate_fn([dataset[i] for i in self.indices])

    def _palettes(self, runner, source_names: List[str]) -> Dict[str, np.ndarray]:
        if not self.class_palette:
            return {}
        meta = getattr(runner.val_loop.dataloader.dataset, 'metainfo', {}) or {}
        palette = meta.get('palette')
        if not palette:
            return {}
        palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        return {name: palette for name in source_names if 'backbone' not in name}

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._validations += 1
        if self._validations % self.interval or not is_main_process():
            return
        data = self._batch(runner)
        maps, batch_hw, health = compute_cluster_maps(
            runner.model, data, self.sources, self.stages, self.block, self.iteration,
            return_health=True)
        if self.log_health:
            self._log_health(runner, health)
        images = [tensor_to_rgb(img) for img in data['inputs']]
        sources = sorted({m.source for m in maps})
        rendered = render_cluster_maps(images, maps, batch_hw,
                                       self._palettes(runner, sources),
                                       alpha=self.alpha, panel_size=self.panel_size)
        step = runner.iter
        for index, (panels, sheet) in zip(self.indices, rendered):
            name = f'cluster_maps_img{index}'
            runner.visualizer.add_image(name, sheet, step=step)
            if self.log_panels:
                for key, panel in panels.items():
                    runner.visualizer.add_image(f'{name}_{key}', panel, step=step)

    def _log_health(self, runner, health: Dict[str, List[Dict[str, float]]]) -> None:
        scalars, collapsed = {}, []
        for source, stages in health.items():
            unit = stage_unit(source)
            for i, h in enumerate(stages):
                for key in ('entropy', 'spread', 'used'):
                    scalars[f'cluster_health/{source}.{unit}{i}.{key}'] = float(h[key])
                if h['entropy'] > self.collapse_entropy and h['spread'] < self.collapse_spread:
                    collapsed.append(f'{source} {unit} {i}')
        runner.logger.info('cluster health (validation images '
                           f'{self.indices}):\n' + format_health(health))
        runner.visualizer.add_scalars(scalars, step=runner.iter)
        if collapsed:
            runner.logger.warning(
                f'cluster collapse in {", ".join(collapsed)}: the E-step is uniform over K '
                f'(entropy / log K > {self.collapse_entropy}) and the centers are one vector '
                f'(spread < {self.collapse_spread}); see docs/en/clustering.md')
