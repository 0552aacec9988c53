"""Complexity analysis of ClusterFormer models (parameters and FLOPs per module group)."""
from .complexity import (GROUPS, clustering_flop_terms, flops_by_group, format_count,
                         group_roots, make_flop_analyzer, params_by_group)

__all__ = ['GROUPS', 'clustering_flop_terms', 'flops_by_group', 'format_count', 'group_roots',
           'make_flop_analyzer', 'params_by_group']
