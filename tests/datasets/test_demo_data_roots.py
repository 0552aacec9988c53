"""The CPU demo configs find the embedded data set from their own location
(configs/_base_/datasets/shapes_*.py), whatever the working directory."""
import os.path as osp

import pytest
from mmengine.config import Config

from helpers import ROOT

DEMOS = {
    'classification/clusterformer-test_1xb32-12e_shapes.py': 'classification',
    'segmentation/clusterformer-test_1xb8-1k_shapes-64x64.py': 'semantic',
    'detection/clusterformer-test_1xb8-1k_shapes-inst.py': 'coco',
    'detection/clusterformer-test-det_1xb8-1k_shapes.py': 'coco',
    'panoptic/clusterformer-test_1xb8-1k_shapes-panoptic.py': 'coco',
}


@pytest.mark.parametrize('config,subdir', sorted(DEMOS.items()))
def test_demo_data_root_is_the_repository_data(config, subdir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    want = osp.join(ROOT, 'data', 'shapes', subdir)
    for split in ('train', 'val', 'test'):
        root = cfg[f'{split}_dataloader'].dataset.data_root
        assert osp.isabs(root) and osp.normpath(root) == want, root
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    for evaluator in evaluators:
        if 'ann_file' in evaluator:
            assert osp.normpath(evaluator.ann_file).startswith(want + osp.sep)
