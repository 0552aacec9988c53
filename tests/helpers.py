"""Shared helpers for the integration tests."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
    full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1',
                'MKL_NUM_THREADS': '1', **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, env=full_env)
    if check:
        assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-6000:]}'
    return proc.returncode, proc.stdout


def python():
    return sys.executable
