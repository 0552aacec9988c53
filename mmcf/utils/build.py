"""Build a model (and a test pipeline) from any mmcf task config, for tools."""
from __future__ import annotations

import os.path as osp
from typing import Callable, List, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

from ..models.utils import loads_pretrained, quiet_init_report

# transforms that need annotation files; dropped when running on bare images
ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'LoadSegAnnotations', 'CheckSegSize',
                         'LoadPanopticAnnotations')


def build_model_from_cfg(cfg: Config, checkpoint: Optional[str] = None,
                         device: str = 'cpu', init: bool = True) -> nn.Module:
    """The config's ``model``, with ``checkpoint`` loaded, in eval mode on
    ``device``.

    Without a checkpoint and with ``init`` the weights are those training
    starts from: the model's ``init_weights`` (quietly), with any
    ``Pretrained`` ``init_cfg`` left out (a tool on random weights must not
    need the pretrained file). ``init=False`` keeps PyTorch's default
    module initialisation.

    The config's ``default_scope`` (mmpretrain, mmseg or mmdet, set by their
    ``default_runtime``) picks the registry, as the runner does.
    """
    if 'model' not in cfg:
        raise KeyError(f'the config {cfg.filename} has no "model" section')
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    model = MODELS.build(cfg.model)
    if checkpoint is None and init:
        init_weights_quietly(model, skip_pretrained=True)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval()


def init_weights_quietly(model: nn.Module, skip_pretrained: bool = False) -> None:
    """``model.init_weights()`` without mmengine's per-parameter report
    (hundreds of "The value is the same before and after calling
    `init_weights`" lines outside a runner). ``skip_pretrained`` drops every
    ``Pretrained`` ``init_cfg`` first."""
    if skip_pretrained:
        for module in model.modules():
            if loads_pretrained(getattr(module, 'init_cfg', None)):
                module.init_cfg = None
    with quiet_init_report():
        model.init_weights()


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
