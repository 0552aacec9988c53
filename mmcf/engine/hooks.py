"""A hook for exact resuming: the RNG states in every checkpoint."""
from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the python, numpy and torch RNG states in every checkpoint and
    restore them when a run resumes, so that it draws the numbers the
    uninterrupted run drew.

    mmengine re-seeds at start-up but does not restore the generators on
    resume. Epoch-based loops resume at an epoch boundary: all three states
    are restored. Iteration-based loops replay the data loader up to the
    resumed iteration, which advances the generators the data transforms draw
    from (python, numpy) as the first run did, but not torch's, which the
    model draws from (dropout, drop path, point sampling in mask losses): only
    torch's is restored. The states are stored as tensors and plain numbers,
    which safe loading accepts. CPU generators only: CUDA kernels are not
    bit-reproducible anyway.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        version, py_state, py_gauss = random.getstate()
        checkpoint['rng_states'] = dict(
            python=dict(version=version, state=torch.tensor(py_state, dtype=torch.int64),
                        gauss=py_gauss),
            numpy=dict(name=str(name), keys=torch.from_numpy(keys.astype(np.int64)),
                       pos=int(pos), has_gauss=int(has_gauss), gauss=float(gauss)),
            torch=torch.get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        states, self._pending = self._pending, None
        if states is None or (runner.train_loop.iter == 0 and runner.train_loop.epoch == 0):
            return
        torch.set_rng_state(states['torch'])
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            runner.logger.info('restored the torch RNG state of the checkpoint (the data '
                               'loader replay advances python\'s and numpy\'s)')
            return
        py, nps = states['python'], states['numpy']
        random.setstate((py['version'], tuple(int(v) for v in py['state']), py['gauss']))
        np.random.set_state((nps['name'], nps['keys'].numpy().astype(np.uint32), nps['pos'],
                             nps['has_gauss'], nps['gauss']))
        runner.logger.info('restored the python, numpy and torch RNG states of the checkpoint')
