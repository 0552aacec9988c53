"""The cluster-assignment protocol that the map tool and the hook read.

Any module that clusters pixels around centers can be drawn as the cluster
assignment maps of Fig. 3 if it exposes four members, exactly those of the
:class:`~mmcf.models.ClusterFormer` backbone:

``record_assignments`` (str, settable)
    ``'none'`` records nothing; ``'last'`` records the last EM iteration of
    each stage's last block; ``'all'`` every block and iteration. Maps are
    recorded in eval mode only, detached, averaged over heads.
``num_stages`` (int)
    How many stages ``assignment_maps`` can address. For a decoder head a
    "stage" is one decoder layer (one RCA layer of Eq. 4).
``num_iters`` (int)
    T, the EM iterations of each RCA layer.
``assignment_maps(stage=-1, block=-1, iteration=-1, hard=True)``
    Maps of the last forward, without running the model again: ``(B, H, W)``
    center indices (the arg-max over the K centers) when ``hard``, else the
    soft maps ``(B, K, H, W)``, at that stage's feature size. Raises
    ``RuntimeError`` when nothing was recorded and ``IndexError`` for an
    iteration that was not recorded. A head with one RCA layer per stage
    accepts ``block`` 0 / -1 only.

The backbone follows it as is and so does
:class:`~mmcf.models.segmentation.ClusterFormerHead` (class centers, one
stage per decoder layer). A detection head with instance centers plugs in by
exposing the same four members; :func:`find_assignment_sources` then finds it
in a detector under its attribute name (e.g. ``bbox_head``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Protocol, Sequence, runtime_checkable

import torch.nn as nn
from torch import Tensor

PROTOCOL_MEMBERS = ('record_assignments', 'num_stages', 'num_iters', 'assignment_maps')


@runtime_checkable
class AssignmentSource(Protocol):
    """Typing view of the protocol described in this module's docstring."""

    record_assignments: str
    num_stages: int
    num_iters: int

    def assignment_maps(self, stage: int = -1, block: int = -1, iteration: int = -1,
                        hard: bool = True) -> Tensor:
        ...


def is_assignment_source(obj: object) -> bool:
    """Whether ``obj`` exposes the four members of the protocol."""
    return all(hasattr(obj, name) for name in PROTOCOL_MEMBERS) and \
        callable(getattr(obj, 'assignment_maps'))


def find_assignment_sources(model: nn.Module,
                            names: Optional[Sequence[str]] = None
                            ) -> Dict[str, nn.Module]:
    """The modules of ``model`` that follow the protocol, by attribute path.

    A model that is itself a source (a bare backbone) is returned as
    ``{'backbone': model}``. Sources nested inside another source are not
    listed. ``names`` keeps only those paths, in that order, and refuses
    unknown ones with a ``KeyError`` that lists the available paths.
    """
    found: 'OrderedDict[str, nn.Module]' = OrderedDict()
    if is_assignment_source(model):
        found['backbone'] = model
    else:
        for name, module in model.named_modules():
            if not name or not is_assignment_source(module):
                continue
            if any(name.startswith(parent + '.') for parent in found):
                continue
            found[name] = module
    if names is None:
        return dict(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f'no cluster-assignment source named {missing} in '
                       f'{type(model).__name__}; available: {list(found)}')
    return {n: found[n] for n in names}
