"""Cluster health of a model on a data set or on image files.

    python tools/analysis/cluster_health.py CONFIG [--checkpoint CKPT]
        [--images IMAGE_OR_DIR ...] [--num-images 64] [--batch-size 16]
        [--source backbone decode_head] [--json OUT] [--cfg-options k=v ...]

Runs the model in eval mode over the first ``--num-images`` images of the
config's validation set (or over ``--images``, through its test pipeline)
and prints, per source (the backbone, a decoder head) and per stage / decoder
layer, averaged over every block and image:

* ``entropy/logK``: mean entropy of a pixel's E-step assignment over the K
  centers, divided by log K (1.0: uniform, the collapsed state);
* ``spread``: relative spread of the K centers, sqrt(mean |c_k - c_bar|^2) /
  sqrt(mean |c_k|^2) (0.0: all centers one vector);
* ``used/K``: centers that win at least one pixel.

Without ``--checkpoint`` the model has the weights training starts from
(``init_weights``). See docs/en/clustering.md for what the numbers mean and
the measured tables.
"""
import argparse
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))))
import mmcf  # noqa: E402,F401  (registers modules, safe checkpoint loading)
import torch  # noqa: E402
from mmcf.utils.cli import CfgOptionsAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmcf.models.recording import HEALTH_KEYS, format_health  # noqa: E402
from mmcf.utils.build import build_image_pipeline, build_model_from_cfg  # noqa: E402
from mmcf.utils.config import load_config  # noqa: E402
from mmcf.visualization.cluster_maps import compute_cluster_health  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.realpath(__file__))))
from visualize_clusters import list_images  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Cluster health (entropy, spread, '
                                     'centers in use) per stage and decoder layer')
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='checkpoint; without it: init_weights')
    parser.add_argument('--images', nargs='+', help='image files or folders instead of '
                        "the config's validation set")
    parser.add_argument('--num-images', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--source', nargs='+', default=None,
                        help='modules to measure, e.g. backbone decode_head (default: all)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the initial weights')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.batch_size < 1:
        parser.error('--num-images and --batch-size must be >= 1')
    return args


def _batches(cfg, args):
    """Collated batches of at most ``--num-images`` images in all."""
    if args.images:
        pipeline = build_image_pipeline(cfg)
        files = list_images(args.images)[:args.num_images]
        for start in range(0, len(files), args.batch_size):
            chunk = files[start:start + args.batch_size]
            yield pseudo_collate([pipeline(dict(img_path=f, img_id=start + i))
                                  for i, f in enumerate(chunk)])
        return
    if not cfg.get('val_dataloader'):
        raise KeyError(f'the config {cfg.filename} has no val_dataloader; pass --images')
    loader_cfg = cfg.val_dataloader.copy()
    loader_cfg.update(batch_size=args.batch_size, num_workers=0, persistent_workers=False)
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    loader = Runner.build_dataloader(loader_cfg)
    seen = 0
    for data in loader:
        n = len(data['inputs'])
        if seen + n > args.num_images:
            keep = args.num_images - seen
            data = {k: v[:keep] if isinstance(v, (list, tuple)) else v for k, v in data.items()}
            n = keep
        yield data
        seen += n
        if seen >= args.num_images:
            return


def measure(cfg, args) -> Dict[str, List[Dict[str, float]]]:
    """Per source and stage, each health figure averaged over the images."""
    torch.manual_seed(args.seed)
    model = build_model_from_cfg(cfg, args.checkpoint, init=args.checkpoint is None)
    sums: Dict[str, Dict[int, Dict[str, float]]] = defaultdict(lambda: defaultdict(
        lambda: defaultdict(float)))
    total = 0
    for data in _batches(cfg, args):
        n = len(data['inputs'])
        health = compute_cluster_health(model, data, args.source)
        for source, stages in health.items():
            for i, h in enumerate(stages):
                for key in HEALTH_KEYS:
                    sums[source][i][key] += h[key] * n
                sums[source][i]['num_centers'] = h['num_centers']
        total += n
    if not total:
        raise ValueError('no images to measure')
    return {source: [{k: (v / total if k in HEALTH_KEYS else v) for k, v in st.items()}
                     for _, st in sorted(stages.items())]
            for source, stages in sums.items()}


def main(argv: Optional[List[str]] = None) -> Dict[str, List[Dict[str, float]]]:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    health = measure(cfg, args)
    weights = args.checkpoint or 'init_weights (untrained)'
    print(f'cluster health of {args.config} ({weights}), averaged over blocks and images')
    print(format_health(health))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, health=health), f,
                      indent=1)
    return health


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, IndexError, KeyError, ValueError, RuntimeError) as err:
        sys.exit(f'cluster_health.py: error: {err}')
