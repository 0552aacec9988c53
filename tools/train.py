"""Train a model from an mmcf (or any OpenMMLab) config with the stock runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
        [--resume-weights-only] [--amp] [--amp-dtype float16|bfloat16]
        [--auto-scale-lr] [--check-data] [--cfg-options k=v ...]
        [--launcher pytorch|slurm|mpi]

Checkpoints are written atomically and resuming skips unreadable ones
(mmcf.engine); one training at a time holds a work dir (``WorkDirLock``);
``--resume`` refuses a checkpoint without optimizer and scheduler state;
the annotations of the train/val data sets are checked before training
(``--check-data`` also decodes every image); with ``--launcher pytorch`` on a
machine without CUDA the processes train on the CPU with gloo.
"""
import argparse
import logging
import os
import os.path as osp
import sys

# importing mmcf registers its modules and lets torch>=2.6 load checkpoints
sys.path.insert(0, osp.dirname(osp.dirname(osp.realpath(__file__))))
import mmcf  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmcf.engine import (BF16AmpOptimWrapper, CheckpointError,  # noqa: E402
                         WorkDirLock, check_checkpoint_finite, check_checkpoint_matches_model,
                         find_resume_checkpoint, load_checkpoint_file, make_reliable,
                         missing_resume_state, setup_cpu_distributed)
from mmcf.engine.preflight import check_before_training  # noqa: E402
from mmcf.utils.cli import add_runner_args, parse_runner_args  # noqa: E402
from mmcf.utils.config import load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmcf')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or with no value from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--resume-weights-only', action='store_true',
        help='with --resume: accept a checkpoint without optimizer/scheduler state (a '
        'best_*.pth) and load its weights only; training restarts at epoch/iter 0 with a '
        'fresh optimizer and schedule')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: fp16 with dynamic loss scale (needs CUDA), or '
        'bfloat16 with --amp-dtype bfloat16 (CUDA or CPU)')
    parser.add_argument(
        '--amp-dtype', choices=['float16', 'bfloat16'], default=None,
        help='autocast dtype of --amp (default float16); bfloat16 implies --amp and '
        'also runs on the CPU (mmcf BF16AmpOptimWrapper, no loss scaling)')
    parser.add_argument(
        '--check-data', action='store_true',
        help='validate the train/val data sets (files, labels, ids) before training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the real batch size')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def _set_amp(cfg, dtype: str) -> None:
    """Switch the config's OptimWrapper to mixed precision of ``dtype``."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper', 'BF16AmpOptimWrapper'):
        raise ValueError(f'--amp needs an OptimWrapper, the config has {wrapper}')
    if dtype == 'bfloat16' and not torch.cuda.is_available():
        cfg.optim_wrapper.type = BF16AmpOptimWrapper.__name__
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)
        return
    if not torch.cuda.is_available():
        raise RuntimeError('--amp (float16) needs a CUDA device: mmengine 0.10.7\'s '
                           'AmpOptimWrapper refuses to run on the CPU; on the CPU use '
                           '--amp-dtype bfloat16')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = dtype
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def build_config(args):
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    make_reliable(cfg)
    if args.amp or args.amp_dtype:
        _set_amp(cfg, args.amp_dtype or 'float16')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        # the newest checkpoint of the work dir that loads; unreadable ones
        # (cut off by a kill) are skipped with a warning naming them
        found = find_resume_checkpoint(cfg.work_dir)
        if found is None:
            what = 'does not exist' if not osp.isdir(cfg.work_dir) else \
                'holds no checkpoint that loads'
            print_log(f'--resume: nothing to resume, starting from scratch (work dir '
                      f'{cfg.work_dir} {what})', logger='current', level=logging.WARNING)
        cfg.resume = found is not None
        cfg.load_from = found
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_data(cfg, full: bool = True) -> None:
    """Validate the data sets of the config's train and val loaders: with
    ``full`` every file and image (``--check-data``), else the annotations
    only (always; cheap), which refuses what mmdet/mmpretrain would read
    wrongly and warns about the instances mmdet drops."""
    from mmcf.datasets.config_check import check_dataset_cfg
    for split in ('train_dataloader', 'val_dataloader'):
        loader = cfg.get(split, None)
        if loader is not None and loader.get('dataset', None) is not None:
            check_dataset_cfg(loader.dataset, check_images=full, check_files=full,
                              allow_outside_root=cfg.get('allow_outside_data_root', False))


def _checked_checkpoint(cfg, args):
    """The checkpoint the run starts from (resume or load_from), loaded and
    checked before anything is built: unreadable, unsafe, NaN weights, or
    (resuming) without the optimizer/scheduler state, are refused."""
    path = cfg.get('load_from', None)
    if not path or '://' in str(path):
        return None
    if not cfg.get('resume', False):
        ckpt = load_checkpoint_file(path)
        check_checkpoint_finite(ckpt, path)
        return ckpt
    ckpt = load_checkpoint_file(path, require=('state_dict', ))
    check_checkpoint_finite(ckpt, path)
    missing = missing_resume_state(ckpt, need_schedulers=bool(cfg.get('param_scheduler')))
    if missing and not args.resume_weights_only:
        raise CheckpointError(
            f'--resume {path}: the checkpoint has no {missing} entry, so resuming would '
            'restart the optimizer (AdamW moments) and the learning-rate schedule (warm-up) '
            'in the middle of training. Resume from an epoch_N/iter_N.pth of the work dir; '
            'a best_*.pth holds weights only. To start a new schedule from its weights, '
            'pass --resume-weights-only.')
    if missing or args.resume_weights_only:
        print_log(
            f'!!! --resume-weights-only: loading ONLY THE WEIGHTS of {path} ('
            + (f'it has no {missing}' if missing else 'its training state is ignored')
            + '); training starts at epoch/iter 0 with a fresh optimizer and learning-rate '
            'schedule. This is not a resume. !!!',
            logger='current', level=logging.WARNING)
        cfg.resume = False
    return ckpt


def _is_rank0() -> bool:
    return all(os.environ.get(k, '0') == '0'
               for k in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'))


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    if args.resume_weights_only and not cfg.get('resume', False):
        raise ValueError('--resume-weights-only needs --resume CHECKPOINT')
    # one training per work dir; the lock dies with the process
    if osp.exists(cfg.work_dir) and not osp.isdir(cfg.work_dir):
        raise NotADirectoryError(f'the work dir {cfg.work_dir} is a file, not a folder: '
                                 'give another --work-dir')
    lock = WorkDirLock(cfg.work_dir).acquire() if _is_rank0() else None
    try:
        check_data(cfg, full=args.check_data)
        resuming = cfg.get('resume', False)
        ckpt = _checked_checkpoint(cfg, args)
        # heads against the data's classes, the resume point against the
        # schedule, the resumed optimizer state against the config's optimizer
        check_before_training(cfg, ckpt, cfg.get('load_from', None))
        setup_cpu_distributed(cfg)
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        if ckpt is not None:
            # mmengine loads with strict=False: a checkpoint of another
            # architecture would only log warnings
            check_checkpoint_matches_model(runner.model, ckpt, cfg.load_from,
                                           strict=resuming and cfg.get('resume', False))
            del ckpt
        runner.train()
    finally:
        if lock is not None:
            lock.release()


if __name__ == '__main__':
    main()
