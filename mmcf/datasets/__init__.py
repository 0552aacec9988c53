"""Data: pipeline transforms (registered in mmdet and mmseg), panoptic PNG
reading, and data-set validation."""
from .panoptic_io import read_panoptic_ids, rgb2id, segment_id_mismatch
from .transforms import CheckSegSize, LoadCocoPanopticAnnotations

__all__ = ['CheckSegSize', 'LoadCocoPanopticAnnotations', 'read_panoptic_ids', 'rgb2id',
           'segment_id_mismatch']
