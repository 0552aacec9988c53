"""Parameters and FLOPs of ClusterFormer models, per module group.

Built on mmengine's complexity analysis (:class:`mmengine.analysis.
FlopAnalyzer`, a TorchScript-trace counter; one "FLOP" is one multiply-add,
fvcore's convention). What it counts in ClusterFormer (checked with
:func:`clustering_flop_terms` and the tests):

* the Q / KV projections (``aten::linear``) and the E-step ``Q K^T`` and
  M-step ``M V`` products (``aten::matmul`` of (B, h, ., .) operands; the
  stock handle counts ``prod(A.shape) * B.shape[-1]``, exact for batched
  4-D matmuls), so no custom handle is needed for Eq. 3;
* Eq. 5's adaptive pooling (one per input element) and its FFN, Eq. 6's
  matmuls and MLP, layer norms, convolutions.

Element-wise work is not counted (softmax over K, the M-step's division by
the assignment mass, GELU, residual adds), as in every fvcore-style count.

Module groups (:data:`GROUPS`): in the backbone, every
:class:`~mmcf.models.clustering.CenterInit` (Eq. 5),
:class:`~mmcf.models.clustering.RecurrentClustering` (Eq. 3) and
:class:`~mmcf.models.clustering.FeatureDispatch` (Eq. 6) module is its own
group; the rest of the backbone (patch embedding, patch merging, norms,
block FFNs) is "encoder stages"; everything outside the backbone (neck,
classification head, decode head) is "heads".
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

from ..models.clustering import CenterInit, FeatureDispatch, RecurrentClustering

ENCODER = 'encoder stages'
CENTER_INIT = 'center init (Eq. 5)'
CLUSTERING = 'clustering (Eq. 3)'
DISPATCH = 'dispatching (Eq. 6)'
HEADS = 'heads'
GROUPS = (ENCODER, CENTER_INIT, CLUSTERING, DISPATCH, HEADS)
_GROUP_TYPES = ((CenterInit, CENTER_INIT), (RecurrentClustering, CLUSTERING),
                (FeatureDispatch, DISPATCH))


def backbone_prefix(model: nn.Module) -> str:
    """Module path of the encoder: '' for a bare backbone, else 'backbone'."""
    backbone = getattr(model, 'backbone', None)
    return 'backbone' if isinstance(backbone, nn.Module) else ''


def group_roots(model: nn.Module) -> 'OrderedDict[str, str]':
    """Module path -> group for the Eq. 3/5/6 modules of the encoder."""
    prefix = backbone_prefix(model)
    encoder = model.get_submodule(prefix) if prefix else model
    roots: 'OrderedDict[str, str]' = OrderedDict()
    for name, module in encoder.named_modules():
        for cls, group in _GROUP_TYPES:
            if isinstance(module, cls):
                roots[f'{prefix}.{name}' if prefix else name] = group
    return roots


def _group_of(name: str, roots: Dict[str, str], prefix: str) -> str:
    for root, group in roots.items():
        if name == root or name.startswith(root + '.'):
            return group
    if not prefix or name == prefix or name.startswith(prefix + '.'):
        return ENCODER
    return HEADS


def params_by_group(model: nn.Module) -> 'OrderedDict[str, int]':
    """Parameter count of each group in :data:`GROUPS` (plus 'total')."""
    roots, prefix = group_roots(model), backbone_prefix(model)
    counts = OrderedDict((g, 0) for g in GROUPS)
    for name, p in model.named_parameters():
        counts[_group_of(name, roots, prefix)] += p.numel()
    counts['total'] = sum(p.numel() for p in model.parameters())
    return counts


def make_flop_analyzer(model: nn.Module, inputs: Union[torch.Tensor, Tuple]) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer with its warnings kept quiet (the element-wise
    ops it skips are listed in the module docstring)."""
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def flops_by_group(model: nn.Module, inputs: Union[torch.Tensor, Tuple],
                   analyzer: Optional[FlopAnalyzer] = None) -> 'OrderedDict[str, int]':
    """FLOPs (multiply-adds) of each group in :data:`GROUPS` for one forward
    on ``inputs`` (plus 'total')."""
    analyzer = analyzer or make_flop_analyzer(model, inputs)
    by_module = analyzer.by_module()
    roots, prefix = group_roots(model), backbone_prefix(model)
    total = int(analyzer.total())
    encoder_total = int(by_module[prefix]) if prefix else total
    counts = OrderedDict((g, 0) for g in GROUPS)
    for root, group in roots.items():
        counts[group] += int(by_module[root])
    counts[ENCODER] = encoder_total - counts[CENTER_INIT] - counts[CLUSTERING] - counts[DISPATCH]
    counts[HEADS] = total - encoder_total
    counts['total'] = total
    return counts


def clustering_flop_terms(model: nn.Module, inputs: Union[torch.Tensor, Tuple],
                          analyzer: Optional[FlopAnalyzer] = None) -> 'OrderedDict[str, int]':
    """The encoder's Eq. 3 FLOPs split into their three terms.

    * ``'kv projection'``: ``N D 2D`` per layer, once (linear in H*W);
    * ``'q projection'``: ``T K D^2`` per layer (independent of H*W);
    * ``'E/M-step matmuls'``: ``2 T K N D`` per layer (linear in H*W for
      fixed K and T).
    """
    analyzer = analyzer or make_flop_analyzer(model, inputs)
    by_module = analyzer.by_module()
    terms = OrderedDict([('kv projection', 0), ('q projection', 0), ('E/M-step matmuls', 0)])
    for root, group in group_roots(model).items():
        if group != CLUSTERING:
            continue
        kv, q = int(by_module[f'{root}.kv']), int(by_module[f'{root}.q'])
        terms['kv projection'] += kv
        terms['q projection'] += q
        terms['E/M-step matmuls'] += int(by_module[root]) - kv - q
    return terms


def format_count(value: float) -> str:
    """12345678 -> '12.35M', as in the README tables."""
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{unit}'
    return str(int(value))
