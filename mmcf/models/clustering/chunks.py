"""Chunk sizes and working precision of the chunked passes over the pixels.

The fused E/M step (:mod:`.em_step`) and the key layout
(:func:`~mmcf.models.clustering.geometry.key_vectors`) walk the (N, ...)
pixel axis in chunks whose temporaries stay in a CPU core's L2 cache; on
CUDA a chunk only bounds the memory of very large maps. Framework-free
(torch only).
"""
from __future__ import annotations

from typing import Optional

import torch

#: bytes of one chunk's (B, heads, rows, K) float32 logits in the fused E/M
#: step (measured in docs/en/analysis.md)
CHUNK_BYTES = {'cpu': 2 << 20, 'cuda': 256 << 20}
#: bytes of one chunk of keys in :func:`~mmcf.models.clustering.geometry.key_vectors`
KEY_CHUNK_BYTES = {'cpu': 1 << 20, 'cuda': 256 << 20}
MIN_ROWS = 64


def chunk_rows(batch_heads: int, num_centers: int, device: torch.device,
               rows: Optional[int] = None) -> int:
    """Pixels per chunk of the E/M step: ``rows`` if given, else as many as
    fit :data:`CHUNK_BYTES` for the device (at least :data:`MIN_ROWS`)."""
    if rows is not None:
        if rows < 1:
            raise ValueError(f'chunk rows must be >= 1, got {rows}')
        return int(rows)
    budget = CHUNK_BYTES.get(device.type, CHUNK_BYTES['cuda'])
    return max(MIN_ROWS, budget // (4 * batch_heads * max(num_centers, 1)))


def key_rows(k: torch.Tensor, rows: Optional[int] = None) -> int:
    """Pixels per chunk of the (B, h, N, d) keys: ``rows`` if given, else
    as many as fit :data:`KEY_CHUNK_BYTES`."""
    if rows is not None:
        return chunk_rows(1, 1, k.device, rows)
    budget = KEY_CHUNK_BYTES.get(k.device.type, KEY_CHUNK_BYTES['cuda'])
    B, h, _, d = k.shape
    return max(MIN_ROWS, budget // (k.element_size() * max(B * h * d, 1)))


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)``, without the call when it is already that dtype (a
    forward at 224 px made 400 such calls per image)."""
    return t if t.dtype == dtype else t.to(dtype)


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The accumulation dtype: float32 for half types and float32, float64
    for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32
