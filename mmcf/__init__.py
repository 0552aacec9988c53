"""mmcf: ClusterFormer for OpenMMLab (mmpretrain, mmdet, mmsegmentation).

Importing mmcf registers its modules, lets torch >= 2.6 load the
checkpoints that OpenMMLab runners write (see :mod:`mmcf.engine.safe_load`)
and routes every way weights reach a model through one safe loader and one
fit rule (:mod:`mmcf.engine.weights`).
"""
from .engine.safe_load import register_checkpoint_safe_globals
from .engine.weights import install_weight_rules
from .version import __version__, version_info

register_checkpoint_safe_globals()
install_weight_rules()

from . import models  # noqa: E402,F401  (registers the modules)
from . import datasets  # noqa: E402,F401  (registers the transforms)
from . import evaluation  # noqa: E402,F401  (registers the PQ metric)
from . import engine  # noqa: E402,F401  (atomic checkpoints, CPU DDP, bf16)
from . import visualization  # noqa: E402,F401  (registers the hook)

__all__ = ['__version__', 'version_info', 'register_checkpoint_safe_globals']
