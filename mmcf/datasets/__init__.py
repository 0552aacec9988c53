"""Data: pipeline transforms (registered in mmdet and mmseg), panoptic PNG
reading, and data-set validation."""
from .panoptic_io import read_panoptic_ids, rgb2id, segment_id_mismatch
from .transforms import (CheckImageFile, CheckSegSize, LoadCocoPanopticAnnotations,
                         LoadSegAnnotations)

__all__ = ['CheckImageFile', 'CheckSegSize', 'LoadCocoPanopticAnnotations', 'LoadSegAnnotations',
           'read_panoptic_ids', 'rgb2id', 'segment_id_mismatch']
