"""Distributed training on machines without CUDA (torchrun + gloo)."""
from __future__ import annotations

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps a model on the CPU.

    mmengine's runner always passes ``device_ids=[LOCAL_RANK]``, which torch's
    DDP refuses for a CPU module; on the CPU the ids are dropped.
    """

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, **kwargs)


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a ``--launcher pytorch`` run on a machine without CUDA.

    mmengine 0.10.7's ``init_dist('pytorch')`` calls
    ``torch.cuda.set_device(LOCAL_RANK)`` before creating the process group,
    which fails without a GPU, and the configs ask for NCCL. So this sets
    ``env_cfg.dist_cfg.backend='gloo'``, creates the gloo process group from
    torchrun's environment (the runner then skips ``init_dist``) and wraps the
    model with :class:`CPUDistributedDataParallel` unless the config names a
    wrapper. Returns whether it did anything (False with CUDA or another
    launcher).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo', init_method='env://')
    if cfg.get('model_wrapper_cfg', None) is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True
