"""Object detection, instance and panoptic segmentation with ClusterFormer
in mmdet (§3.3, §4.1.2, §4.1.4, §4.1.5)."""
from .detector import ClusterFormerDetector, ClusterFormerPanopticDetector
from .head import ClusterFormerDetHead
from .panoptic_fusion import ClusterFormerPanopticFusionHead
from .panoptic_head import AUX_LOSS_DEFAULTS, ClusterFormerPanopticHead

__all__ = ['ClusterFormerDetector', 'ClusterFormerDetHead', 'ClusterFormerPanopticDetector',
           'ClusterFormerPanopticHead', 'ClusterFormerPanopticFusionHead', 'AUX_LOSS_DEFAULTS']
