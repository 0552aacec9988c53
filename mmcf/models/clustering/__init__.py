"""The two mechanisms of ClusterFormer, as small framework-free torch modules.

Every task imports them from here, so the equations live in one place:

* :class:`CenterInit` (``center_init.py``) - Eq. 5, initial centers from the
  image grid.
* :class:`RecurrentClustering` (``rca.py``) - Eq. 3, recurrent cross-attention
  clustering; its E-step and M-step fused in ``em_step.py``; the other
  center updates of Table 6c in ``variants.py``, chosen by ``type`` in a
  ``clustering_cfg`` (:func:`build_clustering`).
* :class:`FeatureDispatch` (``dispatch.py``) - Eq. 6, feature dispatching
  (and the other dispatch rows of Table 6e).

Tensors are token-major: features ``x`` are ``(B, N, D)`` with ``N = H * W``,
centers ``c`` are ``(B, K, D)``. Nothing here depends on mmengine or mmcv.
"""
from .center_init import CenterInit, Mlp, center_grid, pooling_bins, pooling_weights
from .dispatch import DISPATCH_MODES, DISPATCH_SIMS, FeatureDispatch
from .em_step import LOGITS, UNIT_EPS, fused_em_step, logit_vectors, unit_vectors
from .rca import (CLUSTERING_OPTIONS, CLUSTERINGS, M_STEPS, PROJ_INITS, UPDATE_TYPES,
                  RecurrentClustering, build_clustering, clustering_num_iters,
                  refuse_clustering_kwargs, register_clustering)
from .variants import (CosineClustering, CrissCrossClustering, KMeansClustering,
                       VanillaCrossAttention)

__all__ = [
    'CenterInit', 'Mlp', 'center_grid', 'pooling_bins', 'pooling_weights', 'FeatureDispatch',
    'DISPATCH_MODES', 'DISPATCH_SIMS', 'LOGITS', 'UNIT_EPS', 'fused_em_step', 'logit_vectors',
    'unit_vectors', 'CLUSTERING_OPTIONS', 'CLUSTERINGS', 'M_STEPS', 'PROJ_INITS',
    'UPDATE_TYPES', 'RecurrentClustering', 'build_clustering', 'clustering_num_iters',
    'refuse_clustering_kwargs', 'register_clustering', 'CosineClustering',
    'CrissCrossClustering', 'KMeansClustering', 'VanillaCrossAttention'
]
