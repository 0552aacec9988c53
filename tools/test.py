"""Evaluate a checkpoint with the stock runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--cfg-options k=v ...] [--launcher pytorch|slurm|mpi]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.realpath(__file__))))
import mmcf  # noqa: E402,F401
from mmengine.evaluator import DumpResults  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmcf.engine import (check_checkpoint_finite, check_checkpoint_matches_model,  # noqa: E402
                         load_checkpoint_file, setup_cpu_distributed)
from mmcf.engine.preflight import check_class_counts  # noqa: E402
from mmcf.utils.cli import add_runner_args, parse_runner_args  # noqa: E402
from mmcf.utils.config import load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint with mmcf')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {args.checkpoint}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {args.out}')
    # refuse an unreadable, unsafe, NaN or foreign checkpoint before any output:
    # mmengine would load it with strict=False and evaluate random weights
    ckpt = load_checkpoint_file(args.checkpoint, require=())
    # NaN weights (a diverged run) would score 0 without a word
    check_checkpoint_finite(ckpt, args.checkpoint)
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if cfg.get('test_dataloader') and cfg.test_dataloader.get('dataset'):
        # annotations that mmdet/mmpretrain would read wrongly are refused
        from mmcf.datasets.config_check import check_dataset_cfg
        check_dataset_cfg(cfg.test_dataloader.dataset, check_images=False, check_files=False,
                          allow_outside_root=cfg.get('allow_outside_data_root', False))
    # a head of another class count than the data fails at the first image
    check_class_counts(cfg, ('test_dataloader', ))
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    check_checkpoint_matches_model(runner.model, ckpt, args.checkpoint)
    del ckpt
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
