"""Shared helpers for the integration tests."""
import contextlib
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.dirname(osp.abspath(__file__))


def load_make_shapes():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_shapes', osp.join(ROOT, 'tools', 'dataset', 'make_shapes.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(cmd, cwd=ROOT, timeout=600, check=True, env=None):
    """Run a command, returning (returncode, combined output); on failure with
    check=True the assertion shows the end of the output."""
    # tests/ on the path: runs can import tests/fault_injection.py
    path = os.pathsep.join(p for p in (TESTS, os.environ.get('PYTHONPATH')) if p)
    full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1',
                'MKL_NUM_THREADS': '1', 'PYTHONPATH': path, **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, env=full_env)
    if check:
        assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-6000:]}'
    return proc.returncode, proc.stdout


def mim_runs_this_checkout() -> bool:
    """mim runs the tools of the installed mmcf; in a second checkout (a git
    worktree) sharing an environment, that is another checkout's code, which
    cannot read this checkout's configs once they use something new."""
    from mim.utils import get_installed_path
    return osp.realpath(get_installed_path('mmcf')) == osp.join(osp.realpath(ROOT), 'mmcf')


def python():
    return sys.executable


def load_tool(name):
    """``tools/<name>.py`` as a module, to call its ``main`` in this process
    (saves the ~10 s interpreter and OpenMMLab import start-up of a run)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('mmcf_tools_' + name.replace(os.sep, '_'),
                                                  osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def default_scope_kept():
    """Undo the default registry scope that an in-process run sets.

    A runner, like ``init_default_scope``, makes its scope (mmpretrain,
    mmdet, ...) the current one for the whole process; a later test that
    builds from another library's registry by name would look in the wrong
    one.
    """
    from mmengine.registry import DefaultScope
    before = dict(DefaultScope._instance_dict)
    try:
        yield
    finally:
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(before)


@contextlib.contextmanager
def logged(name=None):
    """Capture what an mmengine logger logs while the block runs.

    Yields ``(logger, records)``: the ``MMLogger`` instance ``name`` (None:
    the current one, where ``print_log(..., logger='current')`` goes) and the
    list of ``logging.LogRecord`` it emitted, filled as the block runs.
    """
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance() if name is None else MMLogger.get_instance(name)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield logger, records
    finally:
        logger.removeHandler(handler)


# what ClusterFormer('test', out_indices=(0, 1, 2, 3), out_centers=True)
# returns for a 64x64 image: (channels, side) of the four maps
TEST_MAPS = [(32, 16), (64, 8), (128, 4), (256, 2)]


def fake_backbone_outputs(batch=2, seed=0, num_centers=16):
    """Random stand-ins for those outputs, the centers (B, K, 256) last."""
    import torch
    g = torch.Generator().manual_seed(seed)
    maps = [torch.randn(batch, c, s, s, generator=g) for c, s in TEST_MAPS]
    centers = torch.randn(batch, num_centers, 256, generator=g)
    return tuple(maps) + (centers, )


def build_head_from_config(path, **overrides):
    """The ``bbox_head`` of an mmdet config with the model's ``train_cfg`` /
    ``test_cfg``, ``overrides`` replacing keys; seeded and initialised."""
    import copy

    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = copy.deepcopy(Config.fromfile(path).model)
    head = cfg.bbox_head.to_dict()
    head.update(train_cfg=cfg.train_cfg.to_dict(), test_cfg=cfg.test_cfg.to_dict())
    head.update(overrides)
    torch.manual_seed(0)
    module = MODELS.build(head)
    module.init_weights()
    return module
