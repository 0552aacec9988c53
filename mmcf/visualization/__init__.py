"""Explainability: cluster assignment maps (Fig. 3) for the tool and the hook."""
from .cluster_maps import (RANDOM_WEIGHTS_NOTE, ClusterMap, compute_cluster_health,
                           compute_cluster_maps, read_cluster_health, read_cluster_maps,
                           recording, render_cluster_maps, tensor_to_rgb)
from .hook import ClusterMapVisualizationHook
from .protocol import AssignmentSource, find_assignment_sources, is_assignment_source
from .render import (cluster_palette, colorize_labels, contact_sheet, crop_to_valid,
                     render_assignment_panel, tile_size)

__all__ = [
    'AssignmentSource', 'ClusterMap', 'ClusterMapVisualizationHook', 'RANDOM_WEIGHTS_NOTE',
    'cluster_palette', 'colorize_labels', 'compute_cluster_health', 'compute_cluster_maps', 'contact_sheet',
    'crop_to_valid', 'find_assignment_sources', 'is_assignment_source', 'read_cluster_health',
    'read_cluster_maps',
    'recording', 'render_assignment_panel', 'render_cluster_maps', 'tensor_to_rgb', 'tile_size'
]
