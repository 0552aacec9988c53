"""Semantic segmentation with ClusterFormer in mmsegmentation (§3.3, §4.1.3)."""
from ..decoder import ClusterDecoderLayer
from .decode_head import ClusterFormerHead
from .transforms import CheckSegSize

__all__ = ['ClusterFormerHead', 'ClusterDecoderLayer', 'CheckSegSize']
