"""Fixed-seed fingerprints of every config's model, to prove that a refactor
computes the same functions.

    python tools/analysis/fingerprint_models.py --out before.pt [CONFIG ...]
    python tools/analysis/fingerprint_models.py --out after.pt --compare before.pt

For each config (default: every model config under ``configs/``) the model
is built and initialised as training starts it, under one seed, and the
fingerprint holds:

* every parameter and buffer, by name (its first 256 values, sum and sum
  of squares);
* the outputs of ``mode='tensor'`` on a fixed random 64x64 batch of two
  images (eval mode), every tensor the model returns;
* for configs whose data lie on this machine (the demos: shapes, CamVid,
  Penn-Fudan), the losses of their first training batch and the norm of the
  gradient (train mode, a fixed seed before the forward, so that point
  sampling draws alike), and the tensors of ``mode='predict'`` on their
  first validation batch.

``--compare`` loads an earlier fingerprint and reports, per config, the
largest absolute difference (relative to the tensor's scale) of every entry
both hold; it exits 1 when one is above ``--tol`` (1e-6) or when an entry is
missing on one side.
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import torch
from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))


def config_files() -> List[str]:
    return sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                  if '_base_' not in p)


def _tensors(obj, prefix: str, out: Dict[str, torch.Tensor]) -> None:
    """Every tensor in nested lists, tuples, dicts and mmengine data
    elements, under a dotted name."""
    from mmengine.structures import BaseDataElement
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj.detach().double().cpu()
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _tensors(v, f'{prefix}.{i}', out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _tensors(v, f'{prefix}.{k}', out)
    elif isinstance(obj, BaseDataElement):
        for k, v in obj.items():
            _tensors(v, f'{prefix}.{k}', out)
    elif hasattr(obj, 'masks') and hasattr(obj, 'to_tensor'):  # mmdet BitmapMasks
        _tensors(torch.as_tensor(obj.masks), prefix, out)


def _summary(t: torch.Tensor) -> torch.Tensor:
    """A parameter in brief: its first 256 values, sum and sum of squares
    (the whole tiny and small models would take gigabytes)."""
    flat = t.detach().double().flatten()
    return torch.cat([flat[:256], flat.sum().reshape(1), flat.square().sum().reshape(1)])


def _data_available(cfg) -> bool:
    loader = cfg.get('train_dataloader')
    if not loader:
        return False
    root = loader.get('dataset', {}).get('data_root')
    return bool(root) and osp.isdir(root) and bool(os.listdir(root))


def fingerprint(path: str, seed: int = 0, options: Optional[dict] = None
                ) -> Dict[str, torch.Tensor]:
    from mmengine.config import Config
    from mmengine.runner import Runner, set_random_seed
    from mmengine.registry import init_default_scope
    from mmcf.utils.build import build_model_from_cfg

    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    torch.manual_seed(seed)
    model = build_model_from_cfg(cfg)
    out: Dict[str, torch.Tensor] = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        out[f'param.{name}'] = _summary(t)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 64, 64, generator=g) * 255
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    pre = model.data_preprocessor  # its normalisation; 64x64 needs no padding
    if getattr(pre, '_channel_conversion', False):
        images = images[:, [2, 1, 0]]
    if getattr(pre, '_enable_normalize', False):
        images = (images - pre.mean) / pre.std
    with torch.no_grad():
        try:
            feats = model.extract_feat(images)
        except Exception as e:  # noqa: BLE001 - report, do not stop
            feats = None
            print(f'  extract_feat failed: {type(e).__name__}: {e}')
        if feats is not None:
            _tensors(feats, 'feat', out)
    if _data_available(cfg):
        cfg.train_dataloader.num_workers = 0
        cfg.train_dataloader.persistent_workers = False
        cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=False)
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
        set_random_seed(seed)  # the pipeline's random transforms draw alike
        batch = next(iter(loader))
        model.train()
        data = model.data_preprocessor(batch, True)
        set_random_seed(seed)
        losses = model(**data, mode='loss')
        total = sum(v.sum() for k, v in losses.items() if 'loss' in k and
                    isinstance(v, torch.Tensor))
        total.backward()
        grads = [p.grad.double().norm() for p in model.parameters() if p.grad is not None]
        _tensors(losses, 'loss', out)
        out['grad_norm'] = torch.stack(grads).norm()
        model.eval()
        cfg.val_dataloader.num_workers = 0
        cfg.val_dataloader.persistent_workers = False
        loader = Runner.build_dataloader(cfg.val_dataloader, seed=seed)
        set_random_seed(seed)
        batch = next(iter(loader))
        with torch.no_grad():
            torch.manual_seed(seed)
            data = model.data_preprocessor(batch, False)
            _tensors(model(**data, mode='predict'), 'predict', out)
    return out


def compare(now: Dict[str, Dict[str, torch.Tensor]], before: Dict[str, Dict[str, torch.Tensor]],
            tol: float) -> int:
    bad = 0
    for config in sorted(set(now) | set(before)):
        a, b = now.get(config), before.get(config)
        if a is None or b is None:
            print(f'MISSING {config}: only in {"before" if a is None else "now"}')
            bad += 1
            continue
        worst, where = 0.0, ''
        missing = sorted(set(a) ^ set(b))
        for key in sorted(set(a) & set(b)):
            x, y = a[key], b[key]
            if x.shape != y.shape:
                worst, where = float('inf'), f'{key} shape {tuple(x.shape)} vs {tuple(y.shape)}'
                break
            if x.numel() == 0:
                continue
            scale = max(1.0, float(y.abs().max()))
            diff = float((x - y).abs().max()) / scale
            if diff != diff or diff > worst:
                worst, where = diff, key
        status = 'ok' if worst <= tol and not missing else 'DIFF'
        bad += status != 'ok'
        extra = f'; entries on one side only: {missing[:4]}' if missing else ''
        print(f'{status:4s} {config}: {len(a)} entries, max rel diff {worst:.2e} '
              f'({where}){extra}')
    return 1 if bad else 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('configs', nargs='*')
    p.add_argument('--out', required=True)
    p.add_argument('--compare', default=None)
    p.add_argument('--tol', type=float, default=1e-6)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override settings of every config, as tools/train.py')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, ROOT)
    import mmcf  # noqa: F401  (registers the models)
    prints: Dict[str, Dict[str, torch.Tensor]] = {}
    for path in args.configs or config_files():
        name = osp.relpath(osp.abspath(path), ROOT)
        print(name, flush=True)
        prints[name] = fingerprint(path, args.seed, args.cfg_options)
    torch.save(prints, args.out)
    if args.compare:
        return compare(prints, torch.load(args.compare), args.tol)
    return 0


if __name__ == '__main__':
    sys.exit(main())
