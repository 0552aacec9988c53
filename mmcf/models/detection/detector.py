"""The ClusterFormer detector in mmdet (§3.3, §4.1.2, §4.1.4)."""
from __future__ import annotations

from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS


@MODELS.register_module()
class ClusterFormerDetector(SingleStageDetector):
    """ClusterFormer backbone + :class:`ClusterFormerDetHead`, a query-based
    detector in the DETR / Mask2Former family.

    It is mmdet's ``SingleStageDetector`` (``extract_feat``, ``loss``,
    ``predict``, ``add_pred_to_datasample``), with the head in ``bbox_head``:
    the backbone's outputs, its cluster centers last when ``out_centers=True``,
    go to the head unchanged (``neck=None``), so the head can start its
    instance centers from the encoder's (Table 6f). Predictions are
    ``pred_instances`` (``bboxes``, ``labels``, ``scores`` and, with the mask
    branch, ``masks``) of mmdet's ``DetDataSample``, which ``CocoMetric``
    scores for ``bbox`` and ``segm``.
    """

    def __init__(self, backbone: dict, bbox_head: dict, neck=None, train_cfg=None,
                 test_cfg=None, data_preprocessor=None, init_cfg=None):
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        wants_centers = getattr(self.bbox_head, 'center_init', None) == 'encoder'
        has_centers = getattr(self.backbone, 'out_centers', None)
        if wants_centers and has_centers is False:
            raise ValueError(
                "the head starts from the encoder's centers (center_init='encoder'): "
                'build the backbone with out_centers=True')
