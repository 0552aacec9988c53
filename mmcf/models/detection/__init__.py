"""Object detection, instance and panoptic segmentation with ClusterFormer
in mmdet (§3.3, §4.1.2, §4.1.4, §4.1.5)."""
from .detector import ClusterFormerDetector, ClusterFormerPanopticDetector
from .head import ClusterFormerDetHead
from .panoptic_head import AUX_LOSS_DEFAULTS, ClusterFormerPanopticHead
from .transforms import LoadCocoPanopticAnnotations

__all__ = ['ClusterFormerDetector', 'ClusterFormerDetHead', 'ClusterFormerPanopticDetector',
           'ClusterFormerPanopticHead', 'AUX_LOSS_DEFAULTS', 'LoadCocoPanopticAnnotations']
