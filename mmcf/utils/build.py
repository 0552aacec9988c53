"""Build a model (and a test pipeline) from any mmcf task config, for tools."""
from __future__ import annotations

import os.path as osp
from typing import Callable, List, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

# transforms that need annotation files; dropped when running on bare images
ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'CheckSegSize', 'LoadPanopticAnnotations')


def build_model_from_cfg(cfg: Config, checkpoint: Optional[str] = None,
                         device: str = 'cpu') -> nn.Module:
    """The config's ``model``, with ``checkpoint`` loaded, in eval mode on
    ``device``.

    Without a checkpoint the weights are random: PyTorch's default module
    initialisation, not ``init_weights``. The truncated-normal (std 0.02)
    init of ``init_weights`` makes every attention logit ~1e-5, so all
    softmax assignments tie in float32 and an arg-max map shows one cluster;
    the default init gives O(1) logits and maps that show the structure of
    the untrained features.

    The config's ``default_scope`` (mmpretrain, mmseg or mmdet, set by their
    ``default_runtime``) picks the registry, as the runner does.
    """
    if 'model' not in cfg:
        raise KeyError(f'the config {cfg.filename} has no "model" section')
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval()


def _config_pipeline(cfg: Config) -> List[dict]:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('dataset', {}).get('pipeline'):
            return list(loader['dataset']['pipeline'])
    if cfg.get('test_pipeline'):
        return list(cfg.test_pipeline)
    raise KeyError(f'the config {cfg.filename} has no test pipeline '
                   '(test_dataloader.dataset.pipeline or test_pipeline)')


def build_image_pipeline(cfg: Config) -> Callable[[dict], dict]:
    """The config's test pipeline without the annotation loaders, for
    running on bare image files: call it with ``dict(img_path=...)``."""
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    steps = [t for t in _config_pipeline(cfg)
             if not any(name in str(t.get('type', '')) for name in ANNOTATION_TRANSFORMS)]
    return Compose(steps)
