"""Evaluation metrics registered in mmdet's ``METRICS`` registry."""
from .panoptic_metric import PanopticQualityMetric

__all__ = ['PanopticQualityMetric']
