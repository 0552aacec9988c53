from .checkpoint import checkpoint_safe_globals, register_checkpoint_safe_globals
from .config import load_config

__all__ = ['checkpoint_safe_globals', 'register_checkpoint_safe_globals', 'load_config']
