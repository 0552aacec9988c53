"""mmdet's ``Resize`` for images of any aspect ratio."""
from __future__ import annotations

import mmcv
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SafeResize(Resize):
    """mmdet's ``Resize``, keeping at least one pixel on each side.

    With ``keep_ratio=True`` mmdet scales the image so that it fits
    ``scale`` and rounds each side: an image of 10x4000 pixels scaled to fit
    64x64 becomes 0 pixels high, and OpenCV fails with ``inv_scale_x > 0``
    without naming the image. Here a side that would round to 0 is 1 pixel
    (the image is scaled by slightly different factors in x and y, and
    ``scale_factor`` records both, so predictions map back exactly); every
    other image is resized exactly as mmdet does. Used by the test
    pipelines of the detection, instance and panoptic configs, so any image
    that loads reaches the model (the inferencers and
    ``tools/visualize_clusters.py`` run those pipelines).
    """

    def _resize_img(self, results: dict) -> None:
        img = results.get('img', None)
        if self.keep_ratio and img is not None:
            h, w = img.shape[:2]
            new_w, new_h = mmcv.rescale_size((w, h), results['scale'])
            if min(new_w, new_h) < 1:
                results['scale'] = (max(new_w, 1), max(new_h, 1))
                self.keep_ratio = False
                try:
                    super()._resize_img(results)
                finally:
                    self.keep_ratio = True
                return
        super()._resize_img(results)
