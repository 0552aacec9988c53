"""Pipeline transforms: mmseg's label-size check, mmdet's COCO panoptic
loader without panopticapi."""
from .checks import CheckSegSize
from .loading import LoadCocoPanopticAnnotations

__all__ = ['CheckSegSize', 'LoadCocoPanopticAnnotations']
