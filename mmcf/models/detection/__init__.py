"""Object detection and instance segmentation with ClusterFormer in mmdet
(§3.3, §4.1.2, §4.1.4)."""
from .detector import ClusterFormerDetector
from .head import ClusterFormerDetHead

__all__ = ['ClusterFormerDetector', 'ClusterFormerDetHead']
