"""The two mechanisms of ClusterFormer, as small framework-free torch modules.

Every task imports them from here, so the equations live in one place:

* :class:`CenterInit` (``center_init.py``) - Eq. 5, initial centers from the
  image grid (a block's ``center_init_cfg``).
* :class:`RecurrentClustering` (``rca.py``) - Eq. 3, recurrent cross-attention
  clustering (a block's or decoder layer's ``clustering_cfg``); the other
  center updates of Table 6c in ``variants.py``, chosen by ``type``. Its
  E-step and M-step run plainly or fused (``em_step.py``); both compare keys
  and queries through ``geometry.py``; ``chunks.py`` sizes the chunked
  passes.
* :class:`FeatureDispatch` (``dispatch.py``) - Eq. 6, feature dispatching
  (and the other dispatch rows of Table 6e; a block's ``dispatch_cfg``).
* ``registry.py`` - the layers by ``type``, each option's one place, and
  the refusal of the flat keywords of earlier releases.

Tensors are token-major: features ``x`` are ``(B, N, D)`` with ``N = H * W``,
centers ``c`` are ``(B, K, D)``. Nothing here depends on mmengine or mmcv.
"""
from .center_init import CenterInit, Mlp, center_grid, pooling_bins, pooling_weights
from .dispatch import DISPATCH_MODES, DISPATCH_SIMS, FeatureDispatch
from .em_step import fused_em_step
from .geometry import LOGITS, UNIT_EPS, key_vectors, logit_vectors, unit_vectors
from .registry import (CLUSTERINGS, MOVED_OPTIONS, RENAMED_OPTIONS, UPDATE_TYPES,
                       build_clustering, build_from_cfg, class_options, clustering_default,
                       clustering_num_iters, clustering_options, refuse_old_options,
                       register_clustering)
from .rca import EM_HOOKS, M_STEPS, PROJ_INITS, RecurrentClustering
from .variants import (CosineClustering, CrissCrossClustering, KMeansClustering,
                       VanillaCrossAttention)

__all__ = [
    'CenterInit', 'Mlp', 'center_grid', 'pooling_bins', 'pooling_weights', 'FeatureDispatch',
    'DISPATCH_MODES', 'DISPATCH_SIMS', 'LOGITS', 'UNIT_EPS', 'fused_em_step', 'key_vectors',
    'logit_vectors', 'unit_vectors', 'CLUSTERINGS', 'MOVED_OPTIONS', 'RENAMED_OPTIONS',
    'UPDATE_TYPES', 'build_clustering', 'build_from_cfg', 'class_options',
    'clustering_default', 'clustering_num_iters', 'clustering_options', 'refuse_old_options',
    'register_clustering', 'EM_HOOKS', 'M_STEPS', 'PROJ_INITS', 'RecurrentClustering',
    'CosineClustering', 'CrissCrossClustering', 'KMeansClustering', 'VanillaCrossAttention'
]
