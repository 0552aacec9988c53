"""The ClusterFormer detector in mmdet (§3.3, §4.1.2, §4.1.4)."""
from __future__ import annotations

from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS
from mmengine.structures import PixelData


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


@MODELS.register_module()
class ClusterFormerPanopticDetector(ClusterFormerDetector):
    """ClusterFormer backbone + :class:`ClusterFormerPanopticHead`
    (§4.1.5).

    Training is the detector's (the head computes Eq. 7). Prediction fills
    mmdet's panoptic fields of ``DetDataSample`` as its ``MaskFormer`` does:
    ``pred_panoptic_seg`` (``sem_seg`` (1, H, W), ``label + k *
    INSTANCE_OFFSET`` for things, ``label`` for stuff, ``num_classes`` for
    VOID), ``pred_instances`` (thing masks, boxes, labels, scores) and
    ``pred_sem_seg`` (1, H, W), each when the head's ``test_cfg`` turns it
    on.
    """

    def predict(self, batch_inputs, batch_data_samples, rescale: bool = True):
        feats = self.extract_feat(batch_inputs)
        results = self.bbox_head.predict(feats, batch_data_samples, rescale=rescale)
        for sample, res in zip(batch_data_samples, results):
            if 'pan_results' in res:
                sample.pred_panoptic_seg = PixelData(sem_seg=res['pan_results'][None])
            if 'ins_results' in res:
                sample.pred_instances = res['ins_results']
            if 'sem_results' in res:
                sample.pred_sem_seg = PixelData(sem_seg=res['sem_results'][None])
        return batch_data_samples
