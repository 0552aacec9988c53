import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for path in (ROOT, osp.join(ROOT, 'tests')):
    if path not in sys.path:
        sys.path.insert(0, path)

import pytest
import torch

# One thread per process: on the 2-core CI machines two threads per process
# oversubscribe the cores and made the runner tests 3-4x slower.
torch.set_num_threads(1)


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A small copy of the embedded "shapes" data set, made once per session."""
    from helpers import load_make_shapes
    out = tmp_path_factory.mktemp('data') / 'shapes'
    return load_make_shapes().make_shapes(
        out, size=64, seed=0, num_train=16, num_val=8,
        cls_per_class_train=12, cls_per_class_val=6)


@pytest.fixture(autouse=True)
def no_default_scope_between_tests():
    """Every test starts and ends with no default registry scope.

    ``init_default_scope`` and every runner make their library (mmpretrain,
    mmdet, mmseg) the scope of the whole process; a later test building from
    another library's registry by name would then look in the wrong one, so
    results would depend on the order of the tests.
    """
    from mmengine.registry import DefaultScope
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()
