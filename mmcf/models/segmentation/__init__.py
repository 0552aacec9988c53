"""Semantic segmentation with ClusterFormer in mmsegmentation (§3.3, §4.1.3)."""
from .decode_head import ClusterDecoderLayer, ClusterFormerHead
from .transforms import CheckSegSize

__all__ = ['ClusterFormerHead', 'ClusterDecoderLayer', 'CheckSegSize']
