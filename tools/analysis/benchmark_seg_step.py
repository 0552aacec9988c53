"""Training-step time and peak memory of semantic segmentation configs, side
by side: our head against the heads users would pick instead.

    python tools/analysis/benchmark_seg_step.py [CONFIG ...] [--size 96 128]
        [--batch 8] [--repeats 15] [--warmup 3] [--threads 1] [--out r.json]

Without configs it measures the CamVid ones (the same `test` backbone and
recipe): mmseg's UperNet on our backbone (the reference, first), our
ClusterFormer head, mmseg's Mask2Former head on our backbone, and mmseg's
Swin of the same widths and depths with UperNet. The first config is the
reference every ratio is taken against.

Each config's model and optimizer wrapper are built as the runner builds
them (the config's ``model`` and ``optim_wrapper``: the same parameter
groups, clipping and AdamW), and one step is ``model.train_step(batch,
optim_wrapper)``, what mmengine's training loop calls: data preprocessing,
the forward with every loss of the head (deep supervision, auxiliary head),
backward, clipping and the optimizer step. The batch is made up (random
images and labels of ``--size``), the same for every config. The steps run
interleaved (A B C, C B A, ...) so that a busy machine slows them alike; the
median of ``--repeats`` is reported, after ``--warmup`` steps (the
optimizer's state exists by then). Peak memory is the largest sum of live
tensor allocations during one step (``benchmark.cpu_peak_bytes``: the
profiler's memory events, weights and optimizer state excluded, a lower
bound). The run ends with the target of our head's step at most 1.5x the
reference's. Prints a Markdown table and writes JSON (``--out``).
"""
import argparse
import os.path as osp
import statistics
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.realpath(__file__)))
from benchmark import cpu_peak_bytes, machine_info, time_interleaved, write_json  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

from mmcf.models.utils import quiet_init_report  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
CAMVID = [osp.join('configs', 'segmentation', name) for name in (
    'upernet_clusterformer-test_1xb8-2k_camvid-96x128.py',
    'clusterformer-test_1xb8-2k_camvid-96x128.py',
    'mask2former_clusterformer-test_1xb8-2k_camvid-96x128.py',
    'upernet_swin-test_1xb8-2k_camvid-96x128.py')]
#: our head's step over the reference's (UperNet on the same backbone)
TARGET = 1.5


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('configs', nargs='*', default=None,
                   help='semantic segmentation configs; the first is the reference '
                   '(default: the four CamVid configs, UperNet on our backbone first)')
    p.add_argument('--size', type=int, nargs=2, default=(96, 128), metavar=('H', 'W'))
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory step')
    p.add_argument('--out', default=None, help='write the results as JSON here')
    args = p.parse_args(argv)
    args.configs = args.configs or [osp.join(ROOT, c) for c in CAMVID]
    for path in args.configs:
        if not osp.isfile(path):
            p.error(f'config file not found: {path}')
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        p.error('--batch and --repeats must be >= 1, --warmup >= 0')
    return args


def _num_classes(head) -> int:
    if head is None:
        return 0
    heads = head if isinstance(head, (list, tuple)) else [head]
    return max(h.get('num_classes', 0) for h in heads)


def build(path: str):
    """The model (train mode) and optimizer wrapper of a config, as the runner
    builds them, and the number of classes its labels may use."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS
    with quiet_init_report():
        model = MODELS.build(cfg.model)
        model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = _num_classes(cfg.model.get('decode_head'))
    if num_classes < 1:
        raise ValueError(f'{path}: model.decode_head.num_classes is not set')
    return model, optim_wrapper, num_classes


def make_batch(batch: int, h: int, w: int, num_classes: int, seed: int = 0) -> dict:
    """Random images and labels as the data loader gives them."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def measure(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, w = args.size
    names = [osp.splitext(osp.basename(c))[0] for c in args.configs]
    if len(set(names)) != len(names):
        raise ValueError(f'two configs share a file name: {names}')
    steps, params = {}, {}
    num_classes = None
    for name, path in zip(names, args.configs):
        model, optim_wrapper, n = build(path)
        num_classes = n if num_classes is None else min(num_classes, n)
        params[name] = sum(p.numel() for p in model.parameters())
        steps[name] = (model, optim_wrapper)
    data = make_batch(args.batch, h, w, num_classes)

    def runner(model, optim_wrapper):
        return lambda: model.train_step(data, optim_wrapper)

    runs = {name: runner(*steps[name]) for name in names}
    times = time_interleaved(runs, args.repeats, args.warmup, torch.device('cpu'))
    rows = []
    for name, path in zip(names, args.configs):
        row = dict(name=name, config=osp.relpath(path, ROOT) if path.startswith(ROOT) else path,
                   ms=statistics.median(times[name]) * 1e3,
                   ms_all=[t * 1e3 for t in times[name]], params_m=params[name] / 1e6,
                   peak_mb=None)
        if not args.no_memory:
            row['peak_mb'] = cpu_peak_bytes(runs[name]) / 2 ** 20
        rows.append(row)
    ref = rows[0]
    for row in rows:
        row['time_ratio'] = row['ms'] / ref['ms']
        row['peak_ratio'] = (row['peak_mb'] / ref['peak_mb']
                             if row['peak_mb'] and ref['peak_mb'] else None)
    ours = [r for r in rows[1:] if r['name'].startswith('clusterformer-')]
    target = dict(target=f'training step, our head / {ref["name"]}', limit=TARGET,
                  value=ours[0]['time_ratio'] if ours else None)
    target['met'] = None if target['value'] is None else target['value'] <= TARGET
    return dict(machine=machine_info(torch.device('cpu')), size=[h, w], batch=args.batch,
                repeats=args.repeats, warmup=args.warmup, num_classes=num_classes,
                reference=ref['name'], results=rows, target=target)


def table(result: dict) -> str:
    m = result['machine']
    h, w = result['size']
    lines = [f"{m['date']}, {m['cpu']}, {m['torch_threads']} torch threads, torch {m['torch']}; "
             f"training step at {h}x{w}, batch {result['batch']}, median of "
             f"{result['repeats']} (interleaved)", '',
             '| config | ms / step | x reference | peak MB | x reference | params (M) |',
             '|---|---|---|---|---|---|']
    for r in result['results']:
        peak = '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
        pr = '-' if r['peak_ratio'] is None else f"{r['peak_ratio']:.2f}"
        lines.append(f"| {r['name']} | {r['ms']:.0f} | {r['time_ratio']:.2f} | {peak} | {pr} | "
                     f"{r['params_m']:.2f} |")
    t = result['target']
    value = '-' if t['value'] is None else f"{t['value']:.2f}"
    met = 'not measured' if t['met'] is None else 'yes' if t['met'] else 'no'
    lines += ['', f"Target: {t['target']} <= {t['limit']}: {value} ({met})"]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    result = measure(args)
    print(table(result))
    if args.out:
        write_json(result, args.out)
        print(f'written: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
