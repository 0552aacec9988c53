"""Pipeline transforms: image-file and label-size checks, mmdet's COCO
panoptic loader without panopticapi, label maps without 8-bit wrapping, a
resize that keeps thin images at least one pixel wide."""
from .checks import CheckImageFile, CheckSegSize
from .loading import LoadCocoPanopticAnnotations, LoadSegAnnotations
from .resize import SafeResize

__all__ = ['CheckImageFile', 'CheckSegSize', 'LoadCocoPanopticAnnotations',
           'LoadSegAnnotations', 'SafeResize']
