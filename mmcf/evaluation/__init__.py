"""Evaluation metrics registered in mmdet's ``METRICS`` registry."""
from .coco_metric import FastCocoMetric
from .panoptic_metric import PanopticQualityMetric

__all__ = ['FastCocoMetric', 'PanopticQualityMetric']
