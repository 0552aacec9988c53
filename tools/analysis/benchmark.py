"""Speed and memory: ClusterFormer backbone vs mmpretrain's Swin, forward and
training step, eager and (``--compile``) compiled.

    python tools/analysis/benchmark.py [--archs tiny small]
        [--sizes 224 512 800 1024] [--batch-sizes 1 8] [--max-batch-pixels N]
        [--modes forward train] [--train-sizes 224] [--plain-em]
        [--compile] [--optimizer adamw|foreach|fused]
        [--repeats 5] [--warmup 1] [--device auto|cpu|cuda] [--dtypes fp32 bf16]
        [--threads N] [--no-memory] [--profile] [--time-limit S]
        [--out results.json]

Pairs ClusterFormer-tiny with Swin-T and -small with Swin-S (mmpretrain's
stock ``SwinTransformer``, window 7, the same four outputs at strides
4-32); ``--archs test`` pairs the 32-wide ``test`` ClusterFormer with a Swin
of the same widths and depths (window 4), for quick checks of the tool. For
every input size, batch size, precision and mode the models run
*interleaved* in one process (A B, B A, A B, ...), so a busy or throttled
machine slows both alike and the ratio holds. ``--plain-em`` adds a third
model, ClusterFormer with ``clustering_cfg=dict(fused=False)`` (the plain E/M
formulas of mmcf 0.2 and earlier), so old and new are measured in the same
run.

``--compile`` adds compiled copies of both backbones (``torch.compile(model)``,
default mode, the same weights), timed interleaved with the eager ones; the
tables show eager and compiled figures side by side and the ClusterFormer /
Swin ratio of each. Every measurement (mode, size, batch, precision)
compiles afresh (``torch._dynamo.reset()``, static shapes): the first call
of each compiled model is its compilation, reported apart as "compile s"
and not timed. Where compilation fails (no compiler, an unsupported op) the
run prints ``torch.compile unavailable for X: <reason>; compiled rows
skipped``, records the reason (``compile.failures`` in the JSON) and goes on
with the eager figures. In training the compiled model runs the forward and
the backward torch.compile makes of it; the optimizer stays eager.

Modes:

* ``forward``: eval mode under ``torch.inference_mode``; median latency,
  throughput, peak memory of one forward.
* ``train``: one training step - forward in train mode, the sum of the
  four outputs' means as the loss, backward, an AdamW step (lr 1e-6, weight
  decay 0.05), gradients set to None - at ``--train-sizes`` (default 224
  px); median time and peak memory of a step (after the warm-up steps, so
  AdamW's state exists and is not counted as new). ``--optimizer`` picks
  AdamW's implementation: ``adamw`` (default) is ``torch.optim.AdamW`` with
  torch's defaults, what a config's ``optimizer=dict(type='AdamW')`` gets:
  the foreach kernels on CUDA, the single-tensor loop on the CPU (torch
  defaults to foreach on GPUs only); ``foreach`` and ``fused`` pass
  ``foreach=True`` / ``fused=True``.

Memory: CPU: the largest sum of live tensor allocations, from
``torch.profiler``'s memory events (weights excluded; temporaries freed
inside one op are not seen, so a lower bound); CUDA:
``torch.cuda.max_memory_allocated`` above what was allocated before. A
measurement that runs out of CUDA memory is skipped (listed as such).
Precision: fp32 on CPU, fp32 and bf16 autocast on CUDA (``--dtypes``).

``--profile`` adds, per model and mode at the first size, where the time goes:
the profiler's self time of every op summed into optimizer (everything inside
the optimizer's step), matmul, softmax, normalisation, copies, reductions,
elementwise and other.

``--time-limit S``: measurements not started after S seconds are skipped
(listed as such); the run still ends with its tables.

The run ends with the targets as measured figures (``targets`` in the
JSON), tiny / Swin-T on the eager models: on the CPU the fp32 forward ratio
at 224 and at 1024 px (batch 1, <= 0.95 each), the training step's ratio
(<= 1.05) and peak memory ratio (<= 1.0) at 224 px, and the forward time's
growth from 224 to 1024 px (informative, no target); on CUDA the bf16
forward and training-step ratios at batch 16, 1024 px (<= 1.0 each), the
bf16 batch-1 forward ratio at 1024 px (informative) and the CUDA smoke test
of ``tools/analysis/gpu_check.py`` (measured there). Each target shows "-"
when the run did not measure it. Prints Markdown tables and writes JSON.
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
from typing import Callable, Dict, List, Optional, Tuple

# the profiler (Kineto) of a CUDA build logs "gpuGetDeviceCount failed" on a
# machine without a GPU; keep it to fatal messages unless asked otherwise
os.environ.setdefault('KINETO_LOG_LEVEL', '5')
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))))
import mmcf  # noqa: E402,F401
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from mmcf.engine.atomic_save import atomic_write  # noqa: E402
from mmcf.models import ClusterFormer  # noqa: E402
from mmcf.models.utils import quiet_init_report  # noqa: E402

#: the Swin of each ClusterFormer arch: mmpretrain arch and extra arguments
SWIN_OF = {'tiny': ('tiny', {}), 'small': ('small', {}),
           # the `test` ClusterFormer's widths and depths, window 4 (16x16
           # tokens in stage 1 at 64 px: 4x4 windows, as Swin-T's 7 at 224)
           'test': (dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16]),
                    dict(window_size=4))}
SWIN_NAME = {'tiny': 'Swin-T', 'small': 'Swin-S', 'test': 'Swin-test'}
ARCHS = tuple(SWIN_OF)
DTYPES = ('fp32', 'bf16')
MODES = ('forward', 'train')
PLAIN = ' (plain E/M)'
COMPILED = ' (compiled)'
#: --optimizer: the AdamW arguments of each choice (lr and weight decay are
#: the same for all)
OPTIMIZERS = {'adamw': {}, 'foreach': dict(foreach=True), 'fused': dict(fused=True)}
LR, WEIGHT_DECAY = 1e-6, 0.05

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
    parser.add_argument('--archs', nargs='+', default=['tiny', 'small'], choices=ARCHS,
                        help='tiny (vs Swin-T), small (vs Swin-S); test: the 32-wide test '
                        'model vs a Swin of the same widths, for quick checks')
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 512, 800, 1024])
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 8])
    parser.add_argument('--max-batch-pixels', type=int, default=8 * 1024 * 1024,
                        help='skip batches > 1 with batch*H*W above this (default: 8 MPix)')
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=MODES)
    parser.add_argument('--train-sizes', nargs='+', type=int, default=None,
                        help='sizes of the training-step rows (default: 224, or the '
                        'smallest of --sizes)')
    parser.add_argument('--plain-em', action='store_true',
                        help='also time ClusterFormer with clustering_cfg.fused=False '
                        '(the plain formulas)')
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile(model) of both backbones (same weights); '
                        'the first call compiles and is reported apart')
    parser.add_argument('--optimizer', default='adamw', choices=list(OPTIMIZERS),
                        help="the training step's AdamW: adamw = torch's defaults (foreach "
                        'on CUDA, single-tensor loop on CPU), foreach = foreach=True, '
                        'fused = fused=True (default: adamw)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per model')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--dtypes', nargs='+', default=None, choices=DTYPES,
                        help='default: fp32 on CPU, fp32 and bf16 on CUDA')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory pass')
    parser.add_argument('--profile', action='store_true',
                        help='where the time goes, per op category, at the first size')
    parser.add_argument('--time-limit', type=float, default=None,
                        help='skip the measurements not started after this many seconds')
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
    if args.time_limit is not None and args.time_limit <= 0:
        parser.error('--time-limit must be > 0')
    return args


def build_models(arch: str, device: torch.device, plain_em: bool = False
                 ) -> Dict[str, nn.Module]:
    """ClusterFormer and Swin of the same size (and ClusterFormer with the
    plain E/M step, same weights), four outputs each."""
    from mmpretrain.models import SwinTransformer
    cf = ClusterFormer(arch, out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    # pad_small_map: maps smaller than a window (inputs < 224 px) are padded
    # instead of refused; it changes nothing at 224 px and above
    swin_arch, swin_kw = SWIN_OF[arch]
    swin = SwinTransformer(arch=swin_arch, img_size=224, out_indices=(0, 1, 2, 3),
                           drop_path_rate=0.0, pad_small_map=True, **swin_kw)
    models = {f'ClusterFormer-{arch}': cf, SWIN_NAME[arch]: swin}
    for model in models.values():
        with quiet_init_report():
            model.init_weights()
    if plain_em:
        plain = ClusterFormer(arch, out_indices=(0, 1, 2, 3), drop_path_rate=0.0,
                              clustering_cfg=dict(fused=False))
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


def build_optimizer(params, optimizer: str = 'adamw') -> torch.optim.Optimizer:
    """The training step's AdamW (lr 1e-6, weight decay 0.05); ``optimizer``
    is a key of :data:`OPTIMIZERS`."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f'optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}')
    return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, **OPTIMIZERS[optimizer])


def optimizer_info(optimizer: str, device: torch.device) -> dict:
    """The --optimizer choice as recorded in the JSON and the header, with
    the implementation torch runs: AdamW's defaults (foreach=None,
    fused=None) take the foreach kernels when every parameter is on CUDA and
    the single-tensor loop on the CPU."""
    kw = OPTIMIZERS[optimizer]
    if kw.get('fused'):
        impl = 'fused'
    elif kw.get('foreach') or device.type == 'cuda':
        impl = 'foreach'
    else:
        impl = 'single-tensor'
    return dict(name=optimizer, type='AdamW', lr=LR, weight_decay=WEIGHT_DECAY,
                foreach=kw.get('foreach'), fused=kw.get('fused'), implementation=impl)


def make_train_step(model: nn.Module, x: torch.Tensor, dtype: str,
                    optimizer: str = 'adamw') -> Callable[[], None]:
    """One training step: forward in train mode (bf16 autocast if asked), the
    sum of the outputs' means as the loss, backward, AdamW, grads to None.
    The optimizer is the runner's ``optimizer`` attribute."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim = build_optimizer(params, optimizer)

    def run() -> None:
        model.train()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            outs = model(x)
            loss = sum(o.float().mean() for o in outs)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
    run.optimizer = optim
    return run


def _reason(exc: BaseException) -> str:
    """``<exception type>: <first line of its message>``; for an error that
    wraps another (the backend's failure in torch's BackendCompilerFailed),
    the inner one's as well."""
    def line(e: BaseException) -> str:
        lines = str(e).strip().splitlines()
        return f'{type(e).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    inner = getattr(exc, 'inner_exception', None)
    return line(exc) + (f' ({line(inner)})' if isinstance(inner, BaseException) else '')


def compile_or_none(model: nn.Module, example_input: torch.Tensor, dtype: str = 'fp32',
                    mode: str = 'forward', optimizer: str = 'adamw', backend=None
                    ) -> Tuple[Optional[Callable[[], None]], float, Optional[str]]:
    """``torch.compile(model)`` (default mode; ``backend`` if given) and its
    first call, the compilation: a forward (``mode='forward'``) or a
    training step on ``example_input``.

    Returns ``(runner, seconds of the first call, None)``, or ``(None,
    seconds, reason)`` when ``torch.compile`` or the first call raised
    (reason: ``'<exception type>: <first line>'``); the eager model is then
    left as it was before (gradients cleared).
    """
    device = example_input.device
    start = time.perf_counter()
    try:
        kw = {} if backend is None else dict(backend=backend)
        compiled = torch.compile(model, **kw)
        run = make_runner(compiled, example_input, dtype) if mode == 'forward' else \
            make_train_step(compiled, example_input, dtype, optimizer)
        run()
        _sync(device)
    except Exception as exc:  # noqa: BLE001 - any failure means: no compiled rows
        model.zero_grad(set_to_none=True)
        return None, time.perf_counter() - start, _reason(exc)
    return run, time.perf_counter() - start, None




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


def profile_floors(profiles: List[dict]) -> List[dict]:
    """Lower bounds of the ClusterFormer / Swin time ratio from one
    profiled run of each (same mode, input, batch, dtype): its matrix
    products alone against Swin's whole run (``floor``: what the ratio
    would be if every other op of ClusterFormer cost nothing), and against
    Swin with ClusterFormer's other ops as cheap as Swin's (``level``).
    Below ``floor`` no rewrite of the element-wise work, the copies or the
    Python can bring the ratio; only fewer or faster products can."""
    by_key: Dict[tuple, Dict[str, dict]] = {}
    for p in profiles:
        role = _role(p)  # the eager pair only: not the plain E/M or compiled copies
        if role in ('cf', 'swin'):
            by_key.setdefault((p['mode'], p['size'], p['batch'], p['dtype']), {})[role] = p
    floors = []
    for (mode, size, batch, dtype), pair in by_key.items():
        if set(pair) != {'cf', 'swin'}:
            continue
        cf, swin = pair['cf']['ms'], pair['swin']['ms']
        swin_total = sum(swin.values())
        if swin_total <= 0:
            continue
        floors.append(dict(mode=mode, size=size, batch=batch, dtype=dtype,
                           cf_matmul_ms=cf['matmul'], swin_matmul_ms=swin['matmul'],
                           swin_total_ms=swin_total,
                           matmul_ratio=cf['matmul'] / max(swin['matmul'], 1e-9),
                           floor=cf['matmul'] / swin_total,
                           level=(cf['matmul'] + swin_total - swin['matmul']) / swin_total))
    return floors


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
        info['cuda'] = torch.version.cuda
    return info


def header(result: dict) -> str:
    """The machine, the optimizer and the compile setting, two lines."""
    m = result['machine']
    line = (f"{m['date']}, {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch "
            f"threads, torch {m['torch']}, {m['device']}"
            f"{', ' + m['gpu'] if 'gpu' in m else ''}")
    opt = result.get('optimizer')
    if opt:
        args = ''.join(f', {k}=True' for k in ('foreach', 'fused') if opt[k])
        line += (f"\noptimizer: {opt['name']} = torch.optim.AdamW(lr={opt['lr']:g}, "
                 f"weight_decay={opt['weight_decay']:g}{args}), {opt['implementation']} "
                 f"implementation; torch.compile: "
                 f"{'on' if result.get('compile', {}).get('enabled') else 'off'}")
    return line


def _skip(arch: str, size: int, batch: int, mode: str, **extra) -> dict:
    return dict(arch=arch, size=size, batch=batch, mode=mode, **extra)


def benchmark(args: argparse.Namespace, rows: Optional[List[dict]] = None) -> dict:
    """Runs the measurements of ``args`` (see :func:`parse_args`); ``rows``:
    a list to append the rows to as they are measured (kept by a caller whose
    run is interrupted)."""
    started = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError('--device cuda, but torch sees no CUDA device')
    device = torch.device('cuda' if use_cuda else 'cpu')
    dtypes = args.dtypes or (['fp32', 'bf16'] if use_cuda else ['fp32'])
    optimizer = getattr(args, 'optimizer', 'adamw')
    use_compile = getattr(args, 'compile', False)
    time_limit = getattr(args, 'time_limit', None)
    torch.manual_seed(0)
    rows = [] if rows is None else rows
    skipped, profiles, failures = [], [], []
    for arch in args.archs:
        models = build_models(arch, device, args.plain_em)
        # the compiled copies: ClusterFormer and Swin (not the plain E/M one)
        to_compile = [f'ClusterFormer-{arch}', SWIN_NAME[arch]] if use_compile else []
        for mode in args.modes:
            sizes = args.sizes if mode == 'forward' else args.train_sizes
            for size in sizes:
                for batch in args.batch_sizes:
                    if batch > 1 and batch * size * size > args.max_batch_pixels:
                        skipped.append(_skip(arch, size, batch, mode))
                        continue
                    for dtype in dtypes:
                        if time_limit and time.monotonic() - started > time_limit:
                            skipped.append(_skip(arch, size, batch, mode, dtype=dtype,
                                                 reason='time limit'))
                            continue
                        try:
                            group = _measure(args, models, to_compile, failures, profiles,
                                             arch, mode, size, batch, dtype, device,
                                             optimizer, first=(size == sizes[0] and
                                                               batch == args.batch_sizes[0]))
                        except torch.OutOfMemoryError:
                            for model in models.values():
                                model.zero_grad(set_to_none=True)
                            torch.cuda.empty_cache()
                            skipped.append(_skip(arch, size, batch, mode, dtype=dtype,
                                                 reason='out of memory'))
                            print(f'{arch} {mode} {size}px b{batch} {dtype}: out of memory, '
                                  'skipped', flush=True)
                            continue
                        rows.extend(group)
                        print(format_group(group), flush=True)
        for model in models.values():  # free the optimizers' state
            model.zero_grad(set_to_none=True)
        del models
        if use_compile:
            torch._dynamo.reset()
    result = dict(machine=machine_info(device), repeats=args.repeats, warmup=args.warmup,
                  optimizer=optimizer_info(optimizer, device),
                  compile=dict(enabled=use_compile, failures=failures),
                  results=rows, skipped=skipped, scaling=scaling(rows), profiles=profiles,
                  floors=profile_floors(profiles))
    result['targets'] = targets(result)
    return result


def _measure(args, models, to_compile, failures, profiles, arch, mode, size, batch, dtype,
             device, optimizer, first) -> List[dict]:
    """The rows of one (arch, mode, size, batch, dtype): eager runners, then
    the compiled copies (compiled here, by their first call), timed
    interleaved; memory and profile if asked."""
    x = torch.randn(batch, 3, size, size, device=device)
    runs = {n: make_runner(m, x, dtype) if mode == 'forward' else
            make_train_step(m, x, dtype, optimizer) for n, m in models.items()}
    compile_s = {}
    failed = {f['model'] for f in failures}
    if to_compile:
        torch._dynamo.reset()  # static shapes, no recompile limit across measurements
    for name in to_compile:
        if name in failed:
            continue
        run, seconds, reason = compile_or_none(models[name], x, dtype, mode, optimizer)
        if run is None:
            print(f'torch.compile unavailable for {name}: {reason}; compiled rows skipped',
                  flush=True)
            failures.append(dict(model=name, arch=arch, mode=mode, size=size, batch=batch,
                                 dtype=dtype, reason=reason))
            continue
        runs[name + COMPILED] = run
        compile_s[name + COMPILED] = seconds
    times = time_interleaved(runs, args.repeats, args.warmup, device)
    group = []
    for name, ts in times.items():
        med = statistics.median(ts)
        row = dict(model=name, arch=arch, mode=mode, size=size, batch=batch, dtype=dtype,
                   latency_ms=med * 1e3, min_ms=min(ts) * 1e3, throughput=batch / med,
                   peak_mb=None, compiled=name in compile_s)
        if name in compile_s:
            row['compile_s'] = compile_s[name]
        if not args.no_memory:
            peak = cuda_peak_bytes(runs[name], device) if device.type == 'cuda' \
                else cpu_peak_bytes(runs[name])
            row['peak_mb'] = peak / 2 ** 20
        group.append(row)
        if args.profile and first:
            profiles.append(dict(model=name, mode=mode, size=size, batch=batch, dtype=dtype,
                                 ms=profile_breakdown(runs[name], device)))
    return group


def _role(row: dict) -> str:
    """'cf', 'swin', 'plain', 'cf_compiled' or 'swin_compiled'."""
    name, suffix = row['model'], ''
    if name.endswith(COMPILED):
        name, suffix = name[:-len(COMPILED)], '_compiled'
    if name.endswith(PLAIN):
        return 'plain' + suffix
    return ('cf' if name.startswith('ClusterFormer') else 'swin') + suffix


def _is_cf(row: dict) -> bool:
    return _role(row) == 'cf'


def groups(rows: List[dict]) -> List[List[dict]]:
    """Rows of one (arch, mode, size, batch, dtype), in measuring order."""
    out: Dict[tuple, List[dict]] = {}
    for r in rows:
        out.setdefault((r['arch'], r['mode'], r['size'], r['batch'], r['dtype']), []).append(r)
    return list(out.values())


def _split(group: List[dict]) -> Dict[str, dict]:
    """The rows of a group by role (see :func:`_role`); absent roles missing."""
    return {_role(r): r for r in group}


def _ratio(a: Optional[dict], b: Optional[dict], key: str = 'latency_ms') -> Optional[float]:
    if a is None or b is None or a.get(key) is None or not b.get(key):
        return None
    return a[key] / b[key]


def format_group(group: List[dict]) -> str:
    g = _split(group)
    cf, swin = g['cf'], g['swin']
    text = (f"{cf['arch']:>5} {cf['mode']:>7} {cf['size']:>4}px b{cf['batch']} {cf['dtype']}: "
            f"{cf['model']} {cf['latency_ms']:.0f} ms, {swin['model']} "
            f"{swin['latency_ms']:.0f} ms (x{_ratio(cf, swin):.2f})")
    if 'plain' in g:
        text += f", plain E/M {g['plain']['latency_ms']:.0f} ms"
    cfc, swc = g.get('cf_compiled'), g.get('swin_compiled')
    if cfc or swc:
        def ms(r):
            return '-' if r is None else f"{r['latency_ms']:.0f} ms"

        def comp(r):
            return '-' if r is None else f"{r['compile_s']:.0f} s"
        ratio = _ratio(cfc, swc)
        text += (f"; compiled {ms(cfc)}, {ms(swc)}"
                 f"{'' if ratio is None else f' (x{ratio:.2f})'}, compile {comp(cfc)}, "
                 f"{comp(swc)}")
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


#: what the smoke test of tools/analysis/gpu_check.py checks (its target line)
SMOKE_TARGET = ('CUDA smoke test (tools/analysis/gpu_check.py): tiny forward + backward '
                'finite in fp32 and bf16, fused E/M step = plain formulas (fp32)')


def targets(result: dict, cuda: Optional[bool] = None) -> List[dict]:
    """The targets as measured figures, tiny / Swin-T on the eager models.

    Each is a dict: ``target`` (text), ``kind`` ('ratio': ``value`` <=
    ``limit``; 'info': a figure without a target, ``limit`` None; 'check':
    ``value`` True/False), ``value`` (None: not measured) and ``met`` (None:
    not measured, or no target). ``cuda``: the CUDA targets (default: those of
    the run's device). The smoke line reads ``result['smoke']['passed']``.
    """
    rows = result['results']
    if cuda is None:
        cuda = result['machine']['device'].startswith('cuda')

    def ratio(mode, size, batch, dtype, key='latency_ms'):
        for group in groups(rows):
            g = _split(group)
            cf = g.get('cf')
            if cf is not None and (cf['arch'], cf['mode'], cf['size'], cf['batch'],
                                   cf['dtype']) == ('tiny', mode, size, batch, dtype):
                return _ratio(cf, g.get('swin'), key)
        return None

    def growth():
        sel = {r['size']: r['latency_ms'] for r in rows if _is_cf(r) and r['arch'] == 'tiny'
               and r['mode'] == 'forward' and r['batch'] == 1 and r['dtype'] == 'fp32'}
        if 224 in sel and 1024 in sel:
            return sel[1024] / sel[224]
        return None
    if not cuda:
        out = [
            dict(target='CPU fp32 forward tiny / Swin-T, 224 px, batch 1', limit=0.95,
                 value=ratio('forward', 224, 1, 'fp32')),
            dict(target='CPU fp32 forward tiny / Swin-T, 1024 px, batch 1', limit=0.95,
                 value=ratio('forward', 1024, 1, 'fp32')),
            dict(target=f'CPU fp32 forward time growth of tiny, 224 -> 1024 px (pixels '
                 f'x{(1024 / 224) ** 2:.1f})', limit=None, value=growth()),
            dict(target='CPU fp32 training step tiny / Swin-T, 224 px, batch 1', limit=1.05,
                 value=ratio('train', 224, 1, 'fp32')),
            dict(target='CPU peak training memory tiny / Swin-T, 224 px, batch 1',
                 limit=1.0, value=ratio('train', 224, 1, 'fp32', 'peak_mb')),
        ]
    else:
        smoke = result.get('smoke')
        out = [
            dict(target='CUDA bf16 forward tiny / Swin-T, 1024 px, batch 16', limit=1.0,
                 value=ratio('forward', 1024, 16, 'bf16')),
            dict(target='CUDA bf16 training step tiny / Swin-T, 1024 px, batch 16', limit=1.0,
                 value=ratio('train', 1024, 16, 'bf16')),
            dict(target='CUDA bf16 forward tiny / Swin-T, 1024 px, batch 1', limit=None,
                 value=ratio('forward', 1024, 1, 'bf16')),
            dict(target=SMOKE_TARGET, kind='check', limit=None,
                 value=None if smoke is None else bool(smoke['passed'])),
        ]
    for t in out:
        kind = t.setdefault('kind', 'info' if t['limit'] is None else 'ratio')
        if t['value'] is None or kind == 'info':
            t['met'] = None
        elif kind == 'check':
            t['met'] = bool(t['value'])
        else:
            t['met'] = bool(t['value'] <= t['limit'] + 1e-9)
    return out


def targets_markdown(targets_: List[dict]) -> str:
    lines = ['| target | measured | limit | met |', '|---|---|---|---|']
    for t in targets_:
        kind = t.get('kind', 'ratio')
        if t['value'] is None:
            value = '-'
        elif kind == 'check':
            value = 'pass' if t['value'] else 'fail'
        else:
            value = f"{t['value']:.2f}"
        limit = 'pass' if kind == 'check' else ('-' if t['limit'] is None
                                                else f"<= {t['limit']:.2f}")
        if t['value'] is None:
            met = 'not measured'
        elif kind == 'info':
            met = 'no target'
        else:
            met = 'yes' if t['met'] else 'no'
        lines.append(f"| {t['target']} | {value} | {limit} | {met} |")
    return '\n'.join(lines)


def markdown(result: dict) -> str:
    rows = result['results']
    roles = {_role(r) for r in rows}
    plain = 'plain' in roles
    compiled = bool(roles & {'cf_compiled', 'swin_compiled'})
    head = ('| pair | mode | input | batch | dtype | ClusterFormer ms | Swin ms | CF/Swin time |'
            + (' plain E/M ms | plain/Swin |' if plain else '')
            + (' CF compiled ms | Swin compiled ms | CF/Swin compiled |' if compiled else '')
            + ' CF img/s | Swin img/s | CF peak MB | Swin peak MB |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]

    def mem(r: Optional[dict]) -> str:
        return '-' if r is None or r['peak_mb'] is None else f"{r['peak_mb']:.0f}"

    def ms(r: Optional[dict]) -> str:
        return '-' if r is None else f"{r['latency_ms']:.0f}"

    def rel(a: Optional[dict], b: Optional[dict]) -> str:
        value = _ratio(a, b)
        return '-' if value is None else f'{value:.2f}'
    for group in groups(rows):
        g = _split(group)
        cf, swin, pl = g['cf'], g['swin'], g.get('plain')
        line = (f"| {cf['arch']} vs {swin['model']} | {cf['mode']} | {cf['size']} | "
                f"{cf['batch']} | {cf['dtype']} | {ms(cf)} | {ms(swin)} | {rel(cf, swin)} |")
        if plain:
            line += f' {ms(pl)} | {rel(pl, swin)} |'
        if compiled:
            cfc, swc = g.get('cf_compiled'), g.get('swin_compiled')
            line += f' {ms(cfc)} | {ms(swc)} | {rel(cfc, swc)} |'
        line += (f" {cf['throughput']:.2f} | {swin['throughput']:.2f} | {mem(cf)} | "
                 f"{mem(swin)} |")
        lines.append(line)
    if compiled:
        lines.append('\ntorch.compile (default mode): the first call of each measurement '
                     'compiles (compile s, not timed); the compiled copies\' throughput and '
                     'memory:\n')
        lines.append('| pair | mode | input | batch | dtype | CF compile s | Swin compile s | '
                     'CF compiled img/s | Swin compiled img/s | CF compiled peak MB | '
                     'Swin compiled peak MB |')
        lines.append('|' + '---|' * 11)
        for group in groups(rows):
            g = _split(group)
            cf, swin = g['cf'], g['swin']
            cfc, swc = g.get('cf_compiled'), g.get('swin_compiled')
            if cfc is None and swc is None:
                continue

            def comp(r):
                return '-' if r is None else f"{r['compile_s']:.1f}"

            def tput(r):
                return '-' if r is None else f"{r['throughput']:.2f}"
            lines.append(f"| {cf['arch']} vs {swin['model']} | {cf['mode']} | {cf['size']} | "
                         f"{cf['batch']} | {cf['dtype']} | {comp(cfc)} | {comp(swc)} | "
                         f"{tput(cfc)} | {tput(swc)} | {mem(cfc)} | {mem(swc)} |")
    failures = result.get('compile', {}).get('failures') or []
    if failures:
        lines.append('\ntorch.compile unavailable (compiled rows skipped): ' + '; '.join(
            f"{f['model']} ({f['mode']} {f['size']}px b{f['batch']} {f['dtype']}): "
            f"{f['reason']}" for f in failures))
    for s in result['scaling']:
        lines.append(f"\n{s['model']} b{s['batch']} {s['dtype']}: {s['sizes'][0]} -> "
                     f"{s['sizes'][1]} px, pixels x{s['pixel_growth']:.1f}, latency "
                     f"x{s['latency_growth']:.1f}")
    pixels = [s for s in result['skipped'] if 'reason' not in s]
    if pixels:
        lines.append('\nskipped (batch > 1 and batch*H*W > --max-batch-pixels): ' + ', '.join(
            f"{s['arch']} {s['mode']} {s['size']}px b{s['batch']}" for s in pixels))
    for reason in ('out of memory', 'time limit'):
        sel = [s for s in result['skipped'] if s.get('reason') == reason]
        if sel:
            lines.append(f'\nskipped ({reason}): ' + ', '.join(
                f"{s['arch']} {s['mode']} {s['size']}px b{s['batch']} {s['dtype']}"
                for s in sel))
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
    if result.get('floors'):
        lines.append('\nLower bounds of CF/Swin from the profile: ClusterFormer\'s matrix '
                     'products alone against Swin\'s whole run (floor), and with its other '
                     'ops as cheap as Swin\'s (level):\n')
        lines.append('| mode | input | CF matmul ms | Swin matmul ms | matmul ratio | '
                     'Swin total ms | floor | level |')
        lines.append('|' + '---|' * 8)
        for f in result['floors']:
            lines.append(f"| {f['mode']} | {f['size']} b{f['batch']} {f['dtype']} | "
                         f"{f['cf_matmul_ms']:.0f} | {f['swin_matmul_ms']:.0f} | "
                         f"{f['matmul_ratio']:.2f} | {f['swin_total_ms']:.0f} | "
                         f"{f['floor']:.2f} | {f['level']:.2f} |")
    if result.get('targets'):
        lines.append('\nTargets:\n')
        lines.append(targets_markdown(result['targets']))
    return '\n'.join(lines)


def write_json(result: dict, path: str) -> None:
    """``result`` as JSON at ``path``, never partly written."""
    atomic_write(json.dumps(result, indent=2), path)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    result = benchmark(args)
    print('\n' + header(result))
    print(markdown(result))
    if args.out:
        write_json(result, args.out)
        print(f'\nwritten: {args.out}')
    return result


if __name__ == '__main__':
    main()
