"""Training reliability: atomic checkpoints, exact resume, CPU distributed, bf16."""
from .checkpoint import (AtomicCheckpointHook, AtomicLocalBackend, CheckpointError,
                         atomic_write, check_checkpoint_finite, check_checkpoint_matches_model,
                         checkpoint_mismatch, checkpoint_safe_globals, find_resume_checkpoint,
                         load_checkpoint_file, missing_resume_state,
                         register_checkpoint_safe_globals)
from .dist import CPUDistributedDataParallel, setup_cpu_distributed
from .hooks import RNGStateHook
from .lock import WorkDirLock, WorkDirLockedError
from .optim import BF16AmpOptimWrapper
from .reliable import make_reliable

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointError', 'atomic_write',
    'check_checkpoint_finite', 'check_checkpoint_matches_model', 'checkpoint_mismatch',
    'missing_resume_state', 'WorkDirLock', 'WorkDirLockedError', 'checkpoint_safe_globals', 'find_resume_checkpoint',
    'load_checkpoint_file', 'register_checkpoint_safe_globals',
    'CPUDistributedDataParallel', 'setup_cpu_distributed', 'RNGStateHook',
    'BF16AmpOptimWrapper', 'make_reliable'
]
