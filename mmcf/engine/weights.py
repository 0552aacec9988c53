"""One loader and one rule for every way weights reach a model.

Weights reach a model through ``load_from``, ``--resume``, an ``init_cfg``
of type ``Pretrained`` in any backbone or head, ``tools/test.py``,
``tools/visualize_clusters.py`` and the stock inferencers
(``DetInferencer``, ``MMSegInferencer``, ...) built from mmcf configs. All
of them go through two functions of mmengine 0.10.7
(``mmengine.runner.checkpoint``): the loader of local files
(``CheckpointLoader``'s scheme ``''``) and ``load_state_dict``.
:func:`install_weight_rules` (run by ``import mmcf``) puts mmcf's rules
there:

* **the file**: :func:`~mmcf.engine.safe_load.load_checkpoint_file` reads
  it, with safe loading on (``weights_only=True``): a missing, empty,
  truncated or corrupt file, or one that holds pickled code, is refused with
  a :class:`~mmcf.engine.safe_load.CheckpointError` that names the file and
  the reason, and never advises turning safe loading off;
* **the fit**: a state dict that fits fewer than half of the receiving
  module's weights (by count: the keys the module has, with the same
  shape) is refused naming the file, the module and the first mismatches
  (mmengine would log warnings and go on from random weights: 0 of 126
  weights of a `tiny` checkpoint load into the `test` backbone). A partial
  fit of half or more is loaded as mmengine does, with its warnings.

mmengine's own behaviour is kept for everything else (URLs and other
schemes, strict loading, ``revise_keys``, prefixes).
"""
from __future__ import annotations

import os.path as osp
import threading
from typing import Any, Dict, List, Optional, Tuple

import torch

from .safe_load import CheckpointError, load_checkpoint_file

_state = threading.local()
_installed = False


def last_checkpoint_file() -> Optional[str]:
    """The local checkpoint file this thread read last (what a fit error names)."""
    return getattr(_state, 'path', None)


def load_local_checkpoint(filename: str, map_location=None) -> Dict[str, Any]:
    """mmengine's local-file scheme, through the safe loader: the file is
    named in every error and remembered for the fit check."""
    path = osp.expanduser(str(filename))
    ckpt = load_checkpoint_file(path, require=(), map_location=map_location)
    _state.path = path
    return ckpt


def state_dict_fit(module: torch.nn.Module, state_dict: Dict[str, Any]
                   ) -> Tuple[int, int, List[str]]:
    """``(fitting, total, mismatches)``: how many of the module's weights
    (parameters and buffers, without BatchNorm's ``num_batches_tracked``)
    the state dict holds under the same key and shape, out of how many, and
    the first few that do not fit."""
    own = {k: v for k, v in module.state_dict().items() if 'num_batches_tracked' not in k}
    bad: List[str] = []
    fitting = 0
    for key, value in own.items():
        other = state_dict.get(key)
        if other is None:
            bad.append(f'{key} missing')
        elif tuple(getattr(other, 'shape', ())) != tuple(value.shape):
            bad.append(f'{key} {tuple(other.shape)} vs {tuple(value.shape)}')
        else:
            fitting += 1
    return fitting, len(own), bad[:3]


def check_fit(module: torch.nn.Module, state_dict: Dict[str, Any],
              path: Optional[str] = None) -> None:
    """Refuse a state dict that fits fewer than half of ``module``'s weights."""
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(module):
        module = module.module
    fitting, total, bad = state_dict_fit(module, state_dict)
    if total and fitting * 2 < total:
        where = path or last_checkpoint_file() or 'the checkpoint'
        raise CheckpointError(
            f'{where}: only {fitting} of the {total} weights of {type(module).__name__} are '
            f'in it with their shapes (e.g. {"; ".join(bad)}): a checkpoint of another '
            'model or size? It is refused rather than leaving the model on its random '
            'initial weights. Use the checkpoint of this model (or set the prefix of '
            "init_cfg=dict(type='Pretrained', prefix=...) to the part it holds).")


def install_weight_rules() -> None:
    """Route mmengine's local checkpoint loading and ``load_state_dict``
    through mmcf's rules (idempotent)."""
    global _installed
    if _installed:
        return
    from mmengine.runner import checkpoint as mm_ckpt
    mm_ckpt.CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint,
                                             force=True)
    original = mm_ckpt.load_state_dict

    def load_state_dict(module, state_dict, strict=False, logger=None):
        check_fit(module, state_dict)
        return original(module, state_dict, strict, logger)

    load_state_dict.__doc__ = original.__doc__
    load_state_dict.mmcf_original = original
    mm_ckpt.load_state_dict = load_state_dict
    _installed = True
