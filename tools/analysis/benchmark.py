"""Forward speed and memory: ClusterFormer backbone vs mmpretrain's Swin.

    python tools/analysis/benchmark.py [--archs tiny small]
        [--sizes 224 512 800 1024] [--batch-sizes 1 8] [--max-batch-pixels N]
        [--repeats 5] [--warmup 1] [--device auto|cpu|cuda] [--dtypes fp32 bf16]
        [--threads N] [--no-memory] [--out results.json]

Pairs ClusterFormer-tiny with Swin-T and -small with Swin-S (mmpretrain's
stock ``SwinTransformer``, window 7, the same four outputs at strides
4-32), both in eval mode under ``torch.inference_mode``. For every input
size, batch size and precision the two models run *interleaved* in one
process (A B, B A, A B, ...), so a busy or throttled machine slows both alike
and the ratio holds. Reports the median latency, throughput (images/s) and
peak memory of one forward:

* CPU: fp32; peak = the largest sum of live tensor allocations during the
  forward, from ``torch.profiler``'s memory events (weights excluded);
* CUDA (when present or ``--device cuda``): fp32 and bf16 autocast; peak =
  ``torch.cuda.max_memory_allocated`` above the weights.

Batches larger than 1 with ``batch * H * W > --max-batch-pixels`` are
skipped (listed in the output), so a large batch can be measured at small
sizes only on a small machine; batch 1 always runs. Prints a Markdown table and writes JSON.
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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='ClusterFormer vs Swin forward benchmark')
    parser.add_argument('--archs', nargs='+', default=['tiny', 'small'], choices=['tiny', 'small'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 512, 800, 1024])
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 8])
    parser.add_argument('--max-batch-pixels', type=int, default=8 * 1024 * 1024,
                        help='skip batches > 1 with batch*H*W above this (default: 8 MPix)')
    parser.add_argument('--repeats', type=int, default=5, help='timed forwards per model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed forwards per model')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--dtypes', nargs='+', default=None, choices=DTYPES,
                        help='default: fp32 on CPU, fp32 and bf16 on CUDA')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory pass')
    parser.add_argument('--out', default='work_dirs/benchmark.json', help='JSON output')
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    if min(args.sizes) < 32 or min(args.batch_sizes) < 1:
        parser.error('sizes must be >= 32 and batch sizes >= 1')
    return args


def build_pair(arch: str, device: torch.device) -> Dict[str, nn.Module]:
    """ClusterFormer and Swin of the same size, four outputs each, eval mode."""
    from mmpretrain.models import SwinTransformer
    cf = ClusterFormer(arch, out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    # pad_small_map: maps smaller than a window (inputs < 224 px) are padded
    # instead of refused; it changes nothing at 224 px and above
    swin = SwinTransformer(arch=SWIN_OF[arch], img_size=224, out_indices=(0, 1, 2, 3),
                           drop_path_rate=0.0, pad_small_map=True)
    names = {f'ClusterFormer-{arch}': cf, f'Swin-{arch[0].upper()}': swin}
    for model in names.values():
        with quiet_init_report():
            model.init_weights()
        model.to(device).eval()
    return names


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_runner(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode(), torch.autocast(
                x.device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            model(x)
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


def time_interleaved(runs: Dict[str, Callable[[], None]], repeats: int, warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Seconds per forward of each runner, alternating the order every round."""
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
    rows, skipped = [], []
    for arch in args.archs:
        models = build_pair(arch, device)
        for size in args.sizes:
            for batch in args.batch_sizes:
                if batch > 1 and batch * size * size > args.max_batch_pixels:
                    skipped.append(dict(arch=arch, size=size, batch=batch))
                    continue
                x = torch.randn(batch, 3, size, size, device=device)
                for dtype in dtypes:
                    runs = {n: make_runner(m, x, dtype) for n, m in models.items()}
                    times = time_interleaved(runs, args.repeats, args.warmup, device)
                    for name, ts in times.items():
                        med = statistics.median(ts)
                        row = dict(model=name, arch=arch, size=size, batch=batch, dtype=dtype,
                                   latency_ms=med * 1e3, min_ms=min(ts) * 1e3,
                                   throughput=batch / med, peak_mb=None)
                        if not args.no_memory:
                            peak = cuda_peak_bytes(runs[name], device) if use_cuda \
                                else cpu_peak_bytes(runs[name])
                            row['peak_mb'] = peak / 2 ** 20
                        rows.append(row)
                    print(format_pair(rows[-2:]), flush=True)
    return dict(machine=machine_info(device), repeats=args.repeats, warmup=args.warmup,
                results=rows, skipped=skipped, scaling=scaling(rows))


def format_pair(pair: List[dict]) -> str:
    cf, swin = pair
    return (f"{cf['arch']:>5} {cf['size']:>4}px b{cf['batch']} {cf['dtype']}: "
            f"{cf['model']} {cf['latency_ms']:.0f} ms, {swin['model']} "
            f"{swin['latency_ms']:.0f} ms (x{cf['latency_ms'] / swin['latency_ms']:.2f})")


def scaling(rows: List[dict]) -> List[dict]:
    """Latency growth from the smallest to the largest size (per model, batch
    and dtype) against the growth in pixels."""
    out = []
    keys = {(r['model'], r['batch'], r['dtype']) for r in rows}
    for model, batch, dtype in sorted(keys):
        sel = sorted((r for r in rows if (r['model'], r['batch'], r['dtype']) ==
                      (model, batch, dtype)), key=lambda r: r['size'])
        if len(sel) < 2:
            continue
        lo, hi = sel[0], sel[-1]
        out.append(dict(model=model, batch=batch, dtype=dtype, sizes=[lo['size'], hi['size']],
                        pixel_growth=(hi['size'] / lo['size']) ** 2,
                        latency_growth=hi['latency_ms'] / lo['latency_ms']))
    return out


def markdown(result: dict) -> str:
    lines = ['| pair | input | batch | dtype | ClusterFormer ms | Swin ms | CF/Swin time | '
             'CF img/s | Swin img/s | CF peak MB | Swin peak MB |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    rows = result['results']
    for cf, swin in zip(rows[0::2], rows[1::2]):
        def mem(r: dict) -> str:
            return '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
        lines.append(
            f"| {cf['arch']} vs {swin['model']} | {cf['size']} | {cf['batch']} | {cf['dtype']} | "
            f"{cf['latency_ms']:.0f} | {swin['latency_ms']:.0f} | "
            f"{cf['latency_ms'] / swin['latency_ms']:.2f} | {cf['throughput']:.2f} | "
            f"{swin['throughput']:.2f} | {mem(cf)} | {mem(swin)} |")
    for s in result['scaling']:
        lines.append(f"\n{s['model']} b{s['batch']} {s['dtype']}: {s['sizes'][0]} -> "
                     f"{s['sizes'][1]} px, pixels x{s['pixel_growth']:.1f}, latency "
                     f"x{s['latency_growth']:.1f}")
    if result['skipped']:
        lines.append('\nskipped (batch > 1 and batch*H*W > --max-batch-pixels): ' + ', '.join(
            f"{s['arch']} {s['size']}px b{s['batch']}" for s in result['skipped']))
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
