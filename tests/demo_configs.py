"""The CPU demo configs the reliability tests run, one entry per task.

Adding a task to the reliability tests is one ``Demo(...)`` line in ``DEMOS``.
"""
import os.path as osp
from dataclasses import dataclass
from typing import List, Tuple

from helpers import ROOT


@dataclass(frozen=True)
class Demo:
    """A demo config and how to point it at the ``shapes_root`` fixture.

    Attributes:
        name: test id.
        config: path of the config.
        subdir: the fixture's folder for this task (its data_root).
        by_epoch: epoch-based training loop (else iteration-based).
        batch_size: per-process batch for the tests; with the fixture's data
            an epoch-based demo must have 3 iterations per epoch.
        evaluator_files: the evaluators' file options, ``(key, path)`` with
            ``key`` under ``val_evaluator.`` (``'ann_file'``, or ``'0.ann_file'``
            for a list of evaluators) and ``path`` relative to ``subdir``.
    """
    name: str
    config: str
    subdir: str
    by_epoch: bool
    batch_size: int
    evaluator_files: Tuple[Tuple[str, str], ...] = ()

    def data_options(self, shapes_root) -> List[str]:
        root = osp.join(str(shapes_root), self.subdir)
        opts = [f'{split}_dataloader.dataset.data_root={root}'
                for split in ('train', 'val', 'test')]
        for key, path in self.evaluator_files:
            opts += [f'{e}_evaluator.{key}={osp.join(root, path)}' for e in ('val', 'test')]
        return opts

    def cli_options(self, shapes_root, extra=()) -> List[str]:
        """``--cfg-options`` for tools/train.py and tools/test.py: the
        config pointed at ``shapes_root``, then ``extra``."""
        return ['--cfg-options', *self.data_options(shapes_root), *extra]

    def schedule(self, iters: int = 9, ckpt_every: int = 3) -> List[str]:
        """Train ``iters`` iterations with a checkpoint every ``ckpt_every``."""
        if self.by_epoch:
            return [f'train_cfg.max_epochs={iters // 3}', 'train_cfg.val_interval=100',
                    f'default_hooks.checkpoint.interval={ckpt_every // 3}']
        return [f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=100',
                f'default_hooks.checkpoint.interval={ckpt_every}']

    def ckpt_name(self, iteration: int) -> str:
        """File name of the checkpoint written after ``iteration`` iterations."""
        return f'epoch_{iteration // 3}.pth' if self.by_epoch else f'iter_{iteration}.pth'


DEMOS = [
    Demo('classification',
         osp.join(ROOT, 'configs', 'classification', 'clusterformer-test_1xb32-12e_shapes.py'),
         'classification', by_epoch=True, batch_size=16),
    Demo('segmentation',
         osp.join(ROOT, 'configs', 'segmentation', 'clusterformer-test_1xb8-1k_shapes-64x64.py'),
         'semantic', by_epoch=False, batch_size=4),
    Demo('detection',
         osp.join(ROOT, 'configs', 'detection', 'clusterformer-test_1xb8-1k_shapes-inst.py'),
         'coco', by_epoch=False, batch_size=4,
         evaluator_files=(('ann_file', 'annotations/instances_val.json'), )),
    Demo('panoptic',
         osp.join(ROOT, 'configs', 'panoptic', 'clusterformer-test_1xb8-1k_shapes-panoptic.py'),
         'coco', by_epoch=False, batch_size=4,
         evaluator_files=(('0.ann_file', 'annotations/panoptic_val.json'),
                          ('0.seg_prefix', 'panoptic_val/'),
                          ('1.ann_file', 'annotations/instances_val.json'))),
]
DEMO_BY_NAME = {d.name: d for d in DEMOS}
