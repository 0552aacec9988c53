"""Draw ClusterFormer's cluster assignment maps (Fig. 3) for some images.

    python tools/visualize_clusters.py CONFIG IMAGE [IMAGE ...]
        [--checkpoint CKPT] [--out-dir DIR] [--source backbone decode_head]
        [--stages 0 1 2 3] [--block -1] [--iteration -1] [--alpha 0.5]
        [--panel-size 256] [--device cpu] [--cfg-options k=v ...]

Each image goes through the config's test pipeline (annotation loaders
dropped) and the model once; every pixel of a map is coloured by its arg-max
center. Sources are the modules that follow
:mod:`mmcf.visualization.protocol`: the backbone (its stages) and decoder
heads (their decoder layers; the seg head's class centers use the data
set's class colours). Works with the classification, segmentation (and
detection) configs in configs/. Without ``--checkpoint`` the model has random
weights and every title says so.

Writes, per image, ``<stem>_<source>_<stage|layer><i>_it<t>.png`` (image |
map | overlay; ``t`` counts from 0 like ``--iteration``) and
``<stem>_clusters.png``, a contact sheet of all of them, and prints the
cluster health of each source and stage (entropy of the E-step / log K,
relative spread of the centers, centers that win a pixel; see
docs/en/clustering.md).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.realpath(__file__))))
import mmcf  # noqa: E402,F401  (registers modules, safe checkpoint loading)
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmcf.utils.cli import CfgOptionsAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402

from mmcf.utils.build import build_image_pipeline, build_model_from_cfg  # noqa: E402
from mmcf.utils.config import load_config  # noqa: E402
from mmcf.models.recording import format_health  # noqa: E402
from mmcf.visualization import (RANDOM_WEIGHTS_NOTE, compute_cluster_maps,  # noqa: E402
                                render_cluster_maps, tensor_to_rgb)

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw cluster assignment maps (Fig. 3)')
    parser.add_argument('config', help='model config (classification, segmentation, ...)')
    parser.add_argument('images', nargs='+', help='image files or folders of images')
    parser.add_argument('--checkpoint', help='checkpoint; without it: random weights')
    parser.add_argument('--out-dir', default='work_dirs/cluster_maps', help='output folder')
    parser.add_argument('--source', nargs='+', default=None,
                        help='modules to draw, e.g. backbone decode_head (default: all)')
    parser.add_argument('--stages', nargs='+', type=int, default=None,
                        help='stage (decoder layer) indices, negative from the end '
                        '(default: all)')
    parser.add_argument('--block', type=int, default=-1, help='block within a stage')
    parser.add_argument('--iteration', type=int, default=-1,
                        help='EM iteration, 0..T-1 or negative from the end')
    parser.add_argument('--alpha', type=float, default=0.5, help='map weight in the overlay')
    parser.add_argument('--panel-size', type=int, default=256,
                        help='longer side of each tile in pixels')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def list_images(paths: List[str]) -> List[str]:
    """Image files given directly or found (sorted) in given folders."""
    files = []
    for path in paths:
        if osp.isdir(path):
            found = sorted(osp.join(path, f) for f in os.listdir(path)
                           if f.lower().endswith(IMAGE_EXTS))
            if not found:
                raise FileNotFoundError(f'no image files ({", ".join(IMAGE_EXTS)}) in {path}')
            files += found
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'image not found: {path}')
    return files


def class_palette(cfg) -> Optional[np.ndarray]:
    """The data set's class colours, if the config gives them."""
    for key in ('test_dataloader', 'val_dataloader'):
        meta = (cfg.get(key) or {}).get('dataset', {}).get('metainfo') or {}
        if meta.get('palette'):
            return np.asarray(meta['palette'], dtype=np.uint8).reshape(-1, 3)
    return None


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Draw the maps; returns the written file paths."""
    args = parse_args(argv)
    images = list_images(args.images)
    cfg = load_config(args.config, args.cfg_options)
    torch.manual_seed(args.seed)
    model = build_model_from_cfg(cfg, args.checkpoint, args.device)
    note = '' if args.checkpoint else RANDOM_WEIGHTS_NOTE
    pipeline = build_image_pipeline(cfg)
    palette = class_palette(cfg)
    written = []
    for index, path in enumerate(images):
        data = pseudo_collate([pipeline(dict(img_path=path, img_id=index))])
        maps, batch_hw, health = compute_cluster_maps(
            model, data, args.source, args.stages, args.block, args.iteration,
            return_health=True)
        palettes = {m.source: palette for m in maps
                    if palette is not None and 'backbone' not in m.source}
        image = tensor_to_rgb(data['inputs'][0])
        (panels, sheet), = render_cluster_maps([image], maps, batch_hw, palettes, note,
                                               args.alpha, args.panel_size)
        stem = osp.splitext(osp.basename(path))[0]
        for key, panel in list(panels.items()) + [('clusters', sheet)]:
            out = osp.join(args.out_dir, f'{stem}_{key}.png')
            mmcv.imwrite(panel[..., ::-1], out)  # RGB -> BGR for OpenCV
            written.append(out)
        print(f'{path}: {len(panels)} maps -> {osp.join(args.out_dir, stem + "_clusters.png")}')
        print(format_health(health))
    return written


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, IndexError, KeyError, ValueError, RuntimeError) as err:
        sys.exit(f'visualize_clusters.py: error: {err}')
