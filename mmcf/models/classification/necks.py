"""Classification on cluster centers (§3.3, "Adaptation to Image Classification")."""
from typing import Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ClusterCenterNeck(nn.Module):
    """Pools the encoder's cluster centers into one vector per image.

    §3.3 classifies from the cluster centers with a single-layer MLP; with
    this neck the stock ``LinearClsHead`` is that MLP. The backbone must run
    with ``out_centers=True``, which appends its last-stage centers
    ``(B, K, C)`` to its outputs; this neck averages them over K.
    For the GAP-over-features variant use mmpretrain's stock
    ``GlobalAveragePooling`` neck and ``out_centers=False`` instead.

    Args:
        pool: 'mean' or 'max' over the K centers.
    """

    def __init__(self, pool: str = 'mean'):
        super().__init__()
        if pool not in ('mean', 'max'):
            raise ValueError(f"pool must be 'mean' or 'max', got {pool!r}")
        self.pool = pool

    def init_weights(self) -> None:
        pass

    def forward(self, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor]:
        centers = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        if centers.dim() != 3:
            raise ValueError(
                'ClusterCenterNeck expects cluster centers (B, K, C) as the last backbone '
                f'output, got shape {tuple(centers.shape)}: build the backbone with '
                'out_centers=True')
        pooled = centers.mean(dim=1) if self.pool == 'mean' else centers.amax(dim=1)
        return (pooled, )
