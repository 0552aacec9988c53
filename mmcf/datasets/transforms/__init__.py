"""Pipeline transforms: image-file and label-size checks, mmdet's COCO
panoptic loader without panopticapi, label maps without 8-bit wrapping."""
from .checks import CheckImageFile, CheckSegSize
from .loading import LoadCocoPanopticAnnotations, LoadSegAnnotations

__all__ = ['CheckImageFile', 'CheckSegSize', 'LoadCocoPanopticAnnotations',
           'LoadSegAnnotations']
