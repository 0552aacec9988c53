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
    (§4.1.5) + a ``panoptic_fusion_head``, as mmdet's ``MaskFormer``.

    Training is the detector's (the head computes Eq. 7). Prediction: the
    head returns the final centers' class and mask probabilities, and the
    ``panoptic_fusion_head`` (default
    :class:`ClusterFormerPanopticFusionHead`, built with the head's class
    counts and the detector's ``test_cfg``) fills mmdet's panoptic fields of
    ``DetDataSample``: ``pred_panoptic_seg`` (``sem_seg`` (1, H, W), ``label
    + k * INSTANCE_OFFSET`` for things, ``label`` for stuff, ``num_classes``
    for VOID), ``pred_instances`` (thing masks, boxes, labels, scores, best
    first) and ``pred_sem_seg`` (1, H, W), each when ``test_cfg`` turns it
    on.
    """

    def __init__(self, backbone: dict, bbox_head: dict, panoptic_fusion_head=None,
                 neck=None, train_cfg=None, test_cfg=None, data_preprocessor=None,
                 init_cfg=None):
        super().__init__(backbone=backbone, bbox_head=bbox_head, neck=neck,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        fusion = dict(panoptic_fusion_head or dict(type='ClusterFormerPanopticFusionHead'))
        fusion.setdefault('num_things_classes', self.bbox_head.num_things_classes)
        fusion.setdefault('num_stuff_classes', self.bbox_head.num_stuff_classes)
        for key in ('num_things_classes', 'num_stuff_classes'):
            if fusion[key] != getattr(self.bbox_head, key):
                raise ValueError(f'panoptic_fusion_head.{key}={fusion[key]} differs from the '
                                 f'head\'s {getattr(self.bbox_head, key)}')
        fusion['test_cfg'] = {**dict(fusion.get('test_cfg') or {}),
                              **dict(self.bbox_head.test_cfg or {})}
        self.panoptic_fusion_head = MODELS.build(fusion)

    def predict(self, batch_inputs, batch_data_samples, rescale: bool = True):
        feats = self.extract_feat(batch_inputs)
        outputs = self.bbox_head.predict(feats, batch_data_samples, rescale=rescale)
        for sample, (thing_probs, stuff_probs, mask_probs) in zip(batch_data_samples, outputs):
            res = self.panoptic_fusion_head.predict(thing_probs, stuff_probs, mask_probs)
            if 'pan_results' in res:
                sample.pred_panoptic_seg = PixelData(sem_seg=res['pan_results'][None])
            if 'ins_results' in res:
                sample.pred_instances = res['ins_results']
            if 'sem_results' in res:
                sample.pred_sem_seg = PixelData(sem_seg=res['sem_results'][None])
        return batch_data_samples
