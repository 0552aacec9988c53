"""Speed and memory: ClusterFormer backbone vs mmpretrain's Swin, forward and
training step.

    python tools/analysis/benchmark.py [--archs tiny small]
        [--sizes 224 512 800 1024] [--batch-sizes 1 8] [--max-batch-pixels N]
        [--modes forward train] [--train-sizes 224] [--plain-em]
        [--repeats 5] [--warmup 1] [--device auto|cpu|cuda] [--dtypes fp32 bf16]
        [--threads N] [--no-memory] [--profile] [--out results.json]

Pairs ClusterFormer-tiny with Swin-T and -small with Swin-S (mmpretrain's
stock ``SwinTransformer``, window 7, the same four outputs at strides
4-32). For every input size, batch size, precision and mode the models run
*interleaved* in one process (A B, B A, A B, ...), so a busy or throttled
machine slows both alike and the ratio holds. ``--plain-em`` adds a third
model, ClusterFormer with ``fused_em=False`` (the plain E/M formulas of
mmcf 0.2 and earlier), so old and new are measured in the same run.

Modes:

* ``forward``: eval mode under ``torch.inference_mode``; median latency,
  throughput, peak memory of one forward.
* ``train``: one training step - forward in train mode, the sum of the
  four outputs' means as the loss, backward, an AdamW step, gradients set to
  None - at ``--train-sizes`` (default 224 px); median time and peak memory
  of a step (after the warm-up steps, so AdamW's state exists and is not
  counted as new).

Memory: CPU: the largest sum of live tensor allocations, from
``torch.profiler``'s memory events (weights excluded; temporaries freed
inside one op are not seen, so a lower bound); CUDA:
``torch.cuda.max_memory_allocated`` above what was allocated before.
Precision: fp32 on CPU, fp32 and bf16 autocast on CUDA (``--dtypes``).

``--profile`` adds, per model and mode at the first size, where the time goes:
the profiler's self time of every op summed into optimizer (everything inside
the optimizer's step), matmul, softmax, normalisation, copies, reductions,
elementwise and other.

The run ends with the issue's targets as measured figures (``targets`` in
the JSON): forward ratio at 224 and 1024 px and its growth against the
pixels, the training step's ratio and memory at 224 px, and on CUDA the bf16
batch-16 1024-px and batch-1 ratios; each target shows "-" when the run did
not measure it. Prints Markdown tables and writes JSON.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional

# the profiler (Kineto) of a CUDA build logs "gpuGetDeviceCount failed" on a
# machine without a GPU; keep it to fatal messages unless asked otherwise
os.environ.setdefault('KINETO_LOG_LEVEL', '5')
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))))
import mmcf  # noqa: E402,F401
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from mmcf.models import ClusterFormer  # noqa: E402
from mmcf.models.utils import quiet_init_report  # noqa: E402

SWIN_OF = {'tiny': 'tiny', 'small': 'small', 'base': 'base'}
DTYPES = ('fp32', 'bf16')
MODES = ('forward', 'train')
PLAIN = ' (plain E/M)'

#: the --profile categories, in the order an op name is tested against them
CATEGORY_NAMES = ('optimizer', 'matmul', 'softmax', 'normalisation', 'copies', 'reductions',
                  'elementwise', 'other')
_COPIES = ('copy_', 'clone', 'contiguous', 'cat', 'to', '_to_copy', 'roll', 'pad',
           'constant_pad_nd', 'stack', 'gather', 'scatter', 'scatter_', 'fill_', 'zero_',
           'zeros', 'zeros_like', 'empty', 'empty_like', 'empty_strided', 'new_zeros',
           'masked_fill', 'masked_fill_', 'slice_backward', 'select_backward', 'index',
           'index_put_', 'index_select', 'as_strided', 'unfold', 'im2col', 'expand')
_REDUCTIONS = ('sum', 'mean', 'max', 'min', 'amax', 'argmax', 'var', 'std', 'var_mean')


def op_category(name: str) -> str:
    """The --profile category of a profiler op name (``aten::`` stripped)."""
    op = name.split('::')[-1]
    if op.startswith('_foreach') or op.startswith('Optimizer.') or op == '_fused_adamw_':
        return 'optimizer'
    if 'softmax' in op:
        return 'softmax'
    if any(s in op for s in ('addmm', 'bmm', 'matmul', 'linear', 'conv')) or \
            op in ('mm', 'mv', 'dot', 'einsum'):
        return 'matmul'
    if 'norm' in op or 'rsqrt' in op:
        return 'normalisation'
    if op in _COPIES:
        return 'copies'
    if op in _REDUCTIONS:
        return 'reductions'
    if op.startswith('[') or op in ('detach', 'view', 'reshape', 'transpose', 'permute',
                                    'split', 'split_with_sizes', 'chunk', 'unsqueeze',
                                    'squeeze', 't', 'select', 'slice', 'flatten', 'narrow'):
        return 'other'
    return 'elementwise'




def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='ClusterFormer vs Swin speed and memory')
    parser.add_argument('--archs', nargs='+', default=['tiny', 'small'], choices=['tiny', 'small'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 512, 800, 1024])
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 8])
    parser.add_argument('--max-batch-pixels', type=int, default=8 * 1024 * 1024,
                        help='skip batches > 1 with batch*H*W above this (default: 8 MPix)')
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=MODES)
    parser.add_argument('--train-sizes', nargs='+', type=int, default=None,
                        help='sizes of the training-step rows (default: 224, or the '
                        'smallest of --sizes)')
    parser.add_argument('--plain-em', action='store_true',
                        help='also time ClusterFormer with fused_em=False (the plain formulas)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per model')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--dtypes', nargs='+', default=None, choices=DTYPES,
                        help='default: fp32 on CPU, fp32 and bf16 on CUDA')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory pass')
    parser.add_argument('--profile', action='store_true',
                        help='where the time goes, per op category, at the first size')
    parser.add_argument('--out', default='work_dirs/benchmark.json', help='JSON output')
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    if min(args.sizes) < 32 or min(args.batch_sizes) < 1:
        parser.error('sizes must be >= 32 and batch sizes >= 1')
    if args.train_sizes is None:
        args.train_sizes = [224] if 224 in args.sizes else [min(args.sizes)]
    if min(args.train_sizes) < 32:
        parser.error('train sizes must be >= 32')
    return args


def build_models(arch: str, device: torch.device, plain_em: bool = False
                 ) -> Dict[str, nn.Module]:
    """ClusterFormer and Swin of the same size (and ClusterFormer with the
    plain E/M step, same weights), four outputs each."""
    from mmpretrain.models import SwinTransformer
    cf = ClusterFormer(arch, out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    # pad_small_map: maps smaller than a window (inputs < 224 px) are padded
    # instead of refused; it changes nothing at 224 px and above
    swin = SwinTransformer(arch=SWIN_OF[arch], img_size=224, out_indices=(0, 1, 2, 3),
                           drop_path_rate=0.0, pad_small_map=True)
    models = {f'ClusterFormer-{arch}': cf, f'Swin-{arch[0].upper()}': swin}
    for model in models.values():
        with quiet_init_report():
            model.init_weights()
    if plain_em:
        plain = ClusterFormer(arch, out_indices=(0, 1, 2, 3), drop_path_rate=0.0,
                              fused_em=False)
        plain.load_state_dict(cf.state_dict())
        models[f'ClusterFormer-{arch}{PLAIN}'] = plain
    for model in models.values():
        model.to(device).eval()
    return models


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_runner(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], None]:
    """One forward in eval mode (inference_mode, bf16 autocast if asked)."""
    def run() -> None:
        model.eval()
        with torch.inference_mode(), torch.autocast(
                x.device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            model(x)
    return run


def make_train_step(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], None]:
    """One training step: forward in train mode (bf16 autocast if asked), the
    sum of the outputs' means as the loss, backward, AdamW, grads to None."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-6, weight_decay=0.05)

    def run() -> None:
        model.train()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            outs = model(x)
            loss = sum(o.float().mean() for o in outs)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
    return run


def cpu_peak_bytes(run: Callable[[], None]) -> int:
    """Peak of live allocations during ``run``, from ``torch.profiler``.

    Each op's net allocation (``self_cpu_memory_usage``) and each free
    outside an op (a ``[memory]`` event) is replayed in time order; the peak
    of the running sum is the result. Temporaries allocated and freed inside
    one op are not seen, so this is a lower bound.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    deltas = []
    for e in prof.events():
        delta = e.cpu_memory_usage if e.name == '[memory]' else e.self_cpu_memory_usage
        if delta:
            deltas.append((e.time_range.start, delta))
    live = peak = 0
    for _, delta in sorted(deltas):
        live += delta
        peak = max(peak, live)
    return peak


def cuda_peak_bytes(run: Callable[[], None], device: torch.device) -> int:
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def profile_breakdown(run: Callable[[], None], device: torch.device) -> Dict[str, float]:
    """Milliseconds of self time per op category for one ``run`` (CPU ops;
    on CUDA the kernels' device time)."""
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        run()
        _sync(device)
    totals: Dict[str, float] = defaultdict(float)
    for e in prof.events():
        us = e.self_device_time_total if device.type == 'cuda' else e.self_cpu_time_total
        if us <= 0 or e.name.startswith('ProfilerStep'):
            continue
        # every op run inside the optimizer's step counts as 'optimizer'
        parent, in_step = e.cpu_parent, False
        while parent is not None and not in_step:
            in_step = parent.name.startswith('Optimizer.step')
            parent = parent.cpu_parent
        totals['optimizer' if in_step else op_category(e.name)] += us / 1e3
    return {c: totals.get(c, 0.0) for c in CATEGORY_NAMES}


def time_interleaved(runs: Dict[str, Callable[[], None]], repeats: int, warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Seconds per run of each runner, alternating the order every round."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            _sync(device)
            start = time.perf_counter()
            runs[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info = dict(date=datetime.date.today().isoformat(), cpu=cpu, cores=os.cpu_count(),
                torch_threads=torch.get_num_threads(), torch=torch.__version__,
                python=platform.python_version(), device=str(device))
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def benchmark(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError('--device cuda, but torch sees no CUDA device')
    device = torch.device('cuda' if use_cuda else 'cpu')
    dtypes = args.dtypes or (['fp32', 'bf16'] if use_cuda else ['fp32'])
    torch.manual_seed(0)
    rows, skipped, profiles = [], [], []
    for arch in args.archs:
        models = build_models(arch, device, args.plain_em)
        for mode in args.modes:
            sizes = args.sizes if mode == 'forward' else args.train_sizes
            for size in sizes:
                for batch in args.batch_sizes:
                    if batch > 1 and batch * size * size > args.max_batch_pixels:
                        skipped.append(dict(arch=arch, size=size, batch=batch, mode=mode))
                        continue
                    x = torch.randn(batch, 3, size, size, device=device)
                    for dtype in dtypes:
                        make = make_runner if mode == 'forward' else make_train_step
                        runs = {n: make(m, x, dtype) for n, m in models.items()}
                        times = time_interleaved(runs, args.repeats, args.warmup, device)
                        group = []
                        for name, ts in times.items():
                            med = statistics.median(ts)
                            row = dict(model=name, arch=arch, mode=mode, size=size,
                                       batch=batch, dtype=dtype, latency_ms=med * 1e3,
                                       min_ms=min(ts) * 1e3, throughput=batch / med,
                                       peak_mb=None)
                            if not args.no_memory:
                                peak = cuda_peak_bytes(runs[name], device) if use_cuda \
                                    else cpu_peak_bytes(runs[name])
                                row['peak_mb'] = peak / 2 ** 20
                            group.append(row)
                            if args.profile and size == sizes[0] and \
                                    batch == args.batch_sizes[0]:
                                profiles.append(dict(model=name, mode=mode, size=size,
                                                     batch=batch, dtype=dtype,
                                                     ms=profile_breakdown(runs[name], device)))
                        rows.extend(group)
                        print(format_group(group), flush=True)
        for model in models.values():  # free the optimizers' state
            model.zero_grad(set_to_none=True)
    result = dict(machine=machine_info(device), repeats=args.repeats, warmup=args.warmup,
                  results=rows, skipped=skipped, scaling=scaling(rows), profiles=profiles)
    result['targets'] = targets(result)
    return result


def _is_cf(row: dict) -> bool:
    return row['model'].startswith('ClusterFormer') and not row['model'].endswith(PLAIN)


def groups(rows: List[dict]) -> List[List[dict]]:
    """Rows of one (arch, mode, size, batch, dtype), in measuring order."""
    out: Dict[tuple, List[dict]] = {}
    for r in rows:
        out.setdefault((r['arch'], r['mode'], r['size'], r['batch'], r['dtype']), []).append(r)
    return list(out.values())


def _split(group: List[dict]):
    cf = next(r for r in group if _is_cf(r))
    swin = next(r for r in group if r['model'].startswith('Swin'))
    plain = next((r for r in group if r['model'].endswith(PLAIN)), None)
    return cf, swin, plain


def format_group(group: List[dict]) -> str:
    cf, swin, plain = _split(group)
    text = (f"{cf['arch']:>5} {cf['mode']:>7} {cf['size']:>4}px b{cf['batch']} {cf['dtype']}: "
            f"{cf['model']} {cf['latency_ms']:.0f} ms, {swin['model']} "
            f"{swin['latency_ms']:.0f} ms (x{cf['latency_ms'] / swin['latency_ms']:.2f})")
    if plain is not None:
        text += f", plain E/M {plain['latency_ms']:.0f} ms"
    return text


def scaling(rows: List[dict]) -> List[dict]:
    """Forward latency growth from the smallest to the largest size (per
    model, batch and dtype) against the growth in pixels."""
    out = []
    fwd = [r for r in rows if r['mode'] == 'forward']
    keys = {(r['model'], r['batch'], r['dtype']) for r in fwd}
    for model, batch, dtype in sorted(keys):
        sel = sorted((r for r in fwd if (r['model'], r['batch'], r['dtype']) ==
                      (model, batch, dtype)), key=lambda r: r['size'])
        if len(sel) < 2:
            continue
        lo, hi = sel[0], sel[-1]
        out.append(dict(model=model, batch=batch, dtype=dtype, sizes=[lo['size'], hi['size']],
                        pixel_growth=(hi['size'] / lo['size']) ** 2,
                        latency_growth=hi['latency_ms'] / lo['latency_ms']))
    return out


def targets(result: dict) -> List[dict]:
    """The targets of issue 17 as measured figures (None: not measured)."""
    rows = result['results']
    cuda = result['machine']['device'].startswith('cuda')

    def ratio(mode, size, batch, dtype, key='latency_ms'):
        for group in groups(rows):
            cf, swin, _ = _split(group)
            if (cf['arch'], cf['mode'], cf['size'], cf['batch'], cf['dtype']) == \
                    ('tiny', mode, size, batch, dtype) and cf[key] is not None and swin[key]:
                return cf[key] / swin[key]
        return None

    def growth():
        sel = {r['size']: r['latency_ms'] for r in rows if _is_cf(r) and r['arch'] == 'tiny'
               and r['mode'] == 'forward' and r['batch'] == 1 and r['dtype'] == 'fp32'}
        if 224 in sel and 1024 in sel:
            return sel[1024] / sel[224]
        return None
    out = []
    if not cuda:
        out += [
            dict(target='CPU fp32 forward tiny / Swin-T, 224 px, batch 1', limit=1.0,
                 value=ratio('forward', 224, 1, 'fp32')),
            dict(target='CPU fp32 forward tiny / Swin-T, 1024 px, batch 1', limit=1.0,
                 value=ratio('forward', 1024, 1, 'fp32')),
            dict(target='CPU forward time growth 224 -> 1024 px (pixels x20.9)',
                 limit=(1024 / 224) ** 2, value=growth()),
            dict(target='CPU fp32 training step tiny / Swin-T, 224 px, batch 1', limit=1.1,
                 value=ratio('train', 224, 1, 'fp32')),
            dict(target='CPU peak training memory tiny / Swin-T, 224 px, batch 1',
                 limit=1.0, value=ratio('train', 224, 1, 'fp32', 'peak_mb')),
        ]
    else:
        out += [
            dict(target='GPU bf16 forward tiny / Swin-T, 1024 px, batch 16', limit=1.0,
                 value=ratio('forward', 1024, 16, 'bf16')),
            dict(target='GPU bf16 training step tiny / Swin-T, 1024 px, batch 16', limit=1.0,
                 value=ratio('train', 1024, 16, 'bf16')),
            dict(target='GPU bf16 forward tiny / Swin-T, batch 1 (largest size)', limit=1.2,
                 value=ratio('forward', max([r['size'] for r in rows] or [0]), 1, 'bf16')),
        ]
    for t in out:
        t['met'] = None if t['value'] is None else bool(t['value'] <= t['limit'] + 1e-9)
    return out


def markdown(result: dict) -> str:
    rows = result['results']
    plain = any(r['model'].endswith(PLAIN) for r in rows)
    head = ('| pair | mode | input | batch | dtype | ClusterFormer ms | Swin ms | CF/Swin time |'
            + (' plain E/M ms | plain/Swin |' if plain else '')
            + ' CF img/s | Swin img/s | CF peak MB | Swin peak MB |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]

    def mem(r: dict) -> str:
        return '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
    for group in groups(rows):
        cf, swin, pl = _split(group)
        line = (f"| {cf['arch']} vs {swin['model']} | {cf['mode']} | {cf['size']} | "
                f"{cf['batch']} | {cf['dtype']} | {cf['latency_ms']:.0f} | "
                f"{swin['latency_ms']:.0f} | {cf['latency_ms'] / swin['latency_ms']:.2f} |")
        if plain:
            line += (f" {pl['latency_ms']:.0f} | {pl['latency_ms'] / swin['latency_ms']:.2f} |"
                     if pl else ' - | - |')
        line += (f" {cf['throughput']:.2f} | {swin['throughput']:.2f} | {mem(cf)} | "
                 f"{mem(swin)} |")
        lines.append(line)
    for s in result['scaling']:
        lines.append(f"\n{s['model']} b{s['batch']} {s['dtype']}: {s['sizes'][0]} -> "
                     f"{s['sizes'][1]} px, pixels x{s['pixel_growth']:.1f}, latency "
                     f"x{s['latency_growth']:.1f}")
    if result['skipped']:
        lines.append('\nskipped (batch > 1 and batch*H*W > --max-batch-pixels): ' + ', '.join(
            f"{s['arch']} {s['mode']} {s['size']}px b{s['batch']}" for s in result['skipped']))
    if result.get('profiles'):
        lines.append('\nWhere the time goes (profiler self time, ms; share of the total):\n')
        lines.append('| model | mode | input | ' + ' | '.join(CATEGORY_NAMES) + ' | total |')
        lines.append('|' + '---|' * (len(CATEGORY_NAMES) + 4))
        for p in result['profiles']:
            total = sum(p['ms'].values()) or 1.0
            cells = ' | '.join(f"{p['ms'][c]:.0f} ({100 * p['ms'][c] / total:.0f}%)"
                               for c in CATEGORY_NAMES)
            lines.append(f"| {p['model']} | {p['mode']} | {p['size']} b{p['batch']} "
                         f"{p['dtype']} | {cells} | {total:.0f} |")
    if result.get('targets'):
        lines.append('\nTargets (issue 17):\n')
        lines.append('| target | measured | limit | met |')
        lines.append('|---|---|---|---|')
        for t in result['targets']:
            value = '-' if t['value'] is None else f"{t['value']:.2f}"
            met = 'not measured' if t['met'] is None else ('yes' if t['met'] else 'no')
            lines.append(f"| {t['target']} | {value} | <= {t['limit']:.1f} | {met} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    result = benchmark(args)
    m = result['machine']
    print(f"\n{m['date']}, {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch "
          f"threads, torch {m['torch']}, {m['device']}{', ' + m['gpu'] if 'gpu' in m else ''}")
    print(markdown(result))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
        print(f'\nwritten: {args.out}')
    return result


if __name__ == '__main__':
    main()
