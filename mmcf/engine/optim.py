"""bfloat16 mixed precision that also runs on the CPU."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AmpOptimWrapper(OptimWrapper):
    """Optimizer wrapper that runs forward and loss under bfloat16 autocast.

    mmengine 0.10.7's ``AmpOptimWrapper`` asserts a GPU/NPU/MLU at build time,
    so it cannot train on the CPU. bfloat16 has float32's exponent range, so
    no loss scaling is needed: this wrapper only adds ``torch.autocast`` on
    the model's device (CPU or CUDA) to :class:`OptimWrapper`; weights,
    gradients and optimizer state stay float32. Takes OptimWrapper's args.
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device = next(model.parameters()).device.type
        with super().optim_context(model):
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                yield
