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
