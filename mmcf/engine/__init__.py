"""Training reliability: atomic checkpoints, exact resume, CPU distributed, bf16."""
from .atomic_save import AtomicCheckpointHook, AtomicLocalBackend, atomic_write
from .dist import CPUDistributedDataParallel, setup_cpu_distributed
from .hooks import RNGStateHook
from .lock import WorkDirLock, WorkDirLockedError
from .optim import BF16AmpOptimWrapper
from .reliable import make_reliable
from .resume import (check_checkpoint_finite, check_checkpoint_matches_model, checkpoint_mismatch,
                     find_resume_checkpoint, missing_resume_state)
from .safe_load import (CheckpointError, CheckpointNotFoundError, checkpoint_safe_globals,
                        load_checkpoint_file, register_checkpoint_safe_globals)
from .weights import check_fit, install_weight_rules, last_checkpoint_file

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointError', 'CheckpointNotFoundError',
    'atomic_write', 'check_fit', 'install_weight_rules', 'last_checkpoint_file',
    'check_checkpoint_finite', 'check_checkpoint_matches_model', 'checkpoint_mismatch',
    'missing_resume_state', 'WorkDirLock', 'WorkDirLockedError', 'checkpoint_safe_globals',
    'find_resume_checkpoint',
    'load_checkpoint_file', 'register_checkpoint_safe_globals',
    'CPUDistributedDataParallel', 'setup_cpu_distributed', 'RNGStateHook',
    'BF16AmpOptimWrapper', 'make_reliable'
]
