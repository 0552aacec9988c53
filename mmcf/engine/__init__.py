"""Training reliability: atomic checkpoints, exact resume, CPU distributed, bf16."""
from .checkpoint import (AtomicCheckpointHook, AtomicLocalBackend, CheckpointError,
                         atomic_write, check_checkpoint_matches_model, find_resume_checkpoint,
                         load_checkpoint_file)
from .dist import CPUDistributedDataParallel, setup_cpu_distributed
from .hooks import KillAtIterHook, LossDumpHook, RNGStateHook
from .optim import BF16AmpOptimWrapper
from .reliable import make_reliable

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointError', 'atomic_write',
    'check_checkpoint_matches_model', 'find_resume_checkpoint', 'load_checkpoint_file',
    'CPUDistributedDataParallel', 'setup_cpu_distributed', 'KillAtIterHook', 'LossDumpHook',
    'RNGStateHook', 'BF16AmpOptimWrapper', 'make_reliable'
]
