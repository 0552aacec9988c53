"""Semantic segmentation with ClusterFormer in mmsegmentation (§3.3, §4.1.3)."""
from ..decoder import ClusterDecoderLayer
from .decode_head import ClusterFormerHead

__all__ = ['ClusterFormerHead', 'ClusterDecoderLayer']
