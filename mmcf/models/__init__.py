from . import backbones, classification  # noqa: F401  (registration)
from . import segmentation  # noqa: F401  (registration)
from . import detection  # noqa: F401  (registration)
from .backbones import ClusterFormer
from .clustering import CenterInit, FeatureDispatch, RecurrentClustering

__all__ = ['ClusterFormer', 'CenterInit', 'RecurrentClustering', 'FeatureDispatch']
