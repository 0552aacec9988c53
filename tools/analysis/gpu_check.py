"""One prepared check for a lent GPU machine: a CUDA smoke test of the
backbone, then the benchmark of ClusterFormer-tiny against Swin-T on CUDA,
written as a Markdown section and a JSON.

    python tools/analysis/gpu_check.py [--out work_dirs/gpu_check/gpu_results.md]
        [--json PATH] [--append] [--time-limit 400] [--repeats 5] [--warmup 2]
        [--optimizer adamw|foreach|fused] [--compile] [--device cuda|cpu] [--quick]

In order:

1. Smoke test: ClusterFormer('tiny'), batch 2, 224 px, train mode: a
   forward and a backward in fp32 and under bf16 autocast, with the outputs
   and every gradient finite and the fused E/M step
   (``mmcf.models.clustering.em_step.fused_em_step``) actually called; then
   the fused step against the plain formulas: the same weights with
   ``clustering_cfg=dict(fused=True)`` and ``dict(fused=False)``, float32
   (TF32 off), outputs and gradients equal to ``|a - b| <= atol * max|b| +
   rtol * |b|`` per tensor (``--rtol``/``--atol``, 1e-4; gradients below
   1e-8 of the model's largest in both models are zero up to rounding and
   equal: the center queries' bias, which the centered logits cancel). The
   loss is a fixed random projection of the four outputs, so every gradient
   is exercised (a plain mean would give the final norms zero input
   gradient).
2. The benchmark (``tools/analysis/benchmark.py``'s functions, in this
   process): tiny vs Swin-T, bf16 autocast, forward and training step,
   batch 16 and batch 1 at 1024 px, interleaved, with peak memory; a
   measurement that runs out of memory is listed as skipped. ``--compile``
   adds the compiled copies (each compilation can take a minute or more on a
   GPU: mind ``--time-limit``).
3. A Markdown section (date, GPU, torch and CUDA versions, the command, the
   smoke checks, the benchmark's tables and the targets: the CUDA ones of
   ``benchmark.targets``, with this run's smoke test as the smoke line) to
   ``--out`` (overwritten, or appended to with ``--append``), and a JSON
   beside it (``--json``, default: ``--out`` with ``.json``). Both paths are
   printed.

Time: ``--time-limit`` seconds (default 400) from the start; measurements
not started by then are skipped, and a run still busy 40 s after it is
stopped, with what was measured written out (exit 3). The whole script is
meant to take well under 8 minutes on one H100 / H200.

Without a CUDA device it prints why and exits with code 2. ``--device cpu
--quick`` runs the same code on the CPU at toy sizes (the ``test``
ClusterFormer against a Swin of the same widths, 64 px, batch 2 and 1, one
timed run) - a test of this script, not a measurement; ``--quick`` on CUDA is
the same toy run on the GPU.

Exit codes: 0 done, 1 a smoke check failed (the report is still written),
2 no CUDA device (or bad arguments), 3 the time limit stopped the run.
"""
import argparse
import contextlib
import datetime
import importlib.util
import os
import os.path as osp
import platform
import shlex
import signal
import sys
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault('KINETO_LOG_LEVEL', '5')
HERE = osp.dirname(osp.realpath(__file__))
sys.path.insert(0, osp.dirname(osp.dirname(HERE)))
import torch  # noqa: E402

from mmcf.models import ClusterFormer  # noqa: E402
from mmcf.models.utils import quiet_init_report  # noqa: E402

#: the sizes of a full run and of --quick
FULL = dict(arch='tiny', smoke_size=224, smoke_batch=2, size=1024, batches=[16, 1])
QUICK = dict(arch='test', smoke_size=64, smoke_batch=2, size=64, batches=[2, 1])
#: seconds a run may go on past --time-limit before it is stopped
HARD_MARGIN_S = 40
#: gradients below this fraction of the model's largest are zero up to rounding
#: (the center queries' bias: about 1e-11; the smallest real ones: about 1e-6)
ZERO_GRAD = 1e-8
NO_CUDA = 2
TIMED_OUT = 3


def load_benchmark():
    """tools/analysis/benchmark.py as a module."""
    name = 'mmcf_tools_benchmark'
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, osp.join(HERE, 'benchmark.py'))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CUDA smoke test and benchmark, one report')
    parser.add_argument('--out', default='work_dirs/gpu_check/gpu_results.md',
                        help='the Markdown section (default: %(default)s)')
    parser.add_argument('--json', default=None, help='the JSON (default: --out with .json)')
    parser.add_argument('--append', action='store_true',
                        help='append the section to --out instead of overwriting it')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'],
                        help='cpu needs --quick (a test of the script)')
    parser.add_argument('--quick', action='store_true',
                        help="toy sizes: the 'test' model at 64 px, one timed run")
    parser.add_argument('--time-limit', type=float, default=400.0,
                        help='seconds; later measurements are skipped (default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed runs per model (default: 5, --quick: 1)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed runs per model (default: 2, --quick: 0)')
    parser.add_argument('--optimizer', default='adamw', choices=['adamw', 'foreach', 'fused'])
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile copies (slow to compile)')
    parser.add_argument('--no-benchmark', action='store_true', help='the smoke test only')
    parser.add_argument('--rtol', type=float, default=1e-4)
    parser.add_argument('--atol', type=float, default=1e-4)
    args = parser.parse_args(argv)
    if args.device == 'cpu' and not args.quick:
        parser.error('--device cpu runs the toy sizes only: add --quick')
    if args.time_limit <= 0:
        parser.error('--time-limit must be > 0')
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    if args.warmup is None:
        args.warmup = 0 if args.quick else 2
    if args.json is None:
        args.json = osp.splitext(args.out)[0] + '.json'
    return args


# ------------------------------------------------------------------ smoke test
@contextlib.contextmanager
def exact_fp32():
    """float32 matmuls and convolutions without TF32, restored after."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def count_fused_calls():
    """Counts the calls of the fused E/M step (``calls[0]``)."""
    from mmcf.models.clustering import rca
    original, calls = rca.fused_em_step, [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)
    rca.fused_em_step = counted
    try:
        yield calls
    finally:
        rca.fused_em_step = original


def step(model: torch.nn.Module, x: torch.Tensor, dtype: str
         ) -> Tuple[List[torch.Tensor], Dict[str, torch.Tensor], int]:
    """Forward in train mode (bf16 autocast if asked) and backward of a fixed
    random projection of the outputs: (outputs, gradients by name, calls of
    the fused E/M step)."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    with count_fused_calls() as calls:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            outs = model(x)
        gen = torch.Generator().manual_seed(1)
        loss = sum((o.float() * torch.randn(o.shape, generator=gen).to(o.device)).mean()
                   for o in outs)
        loss.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return [o.detach().float() for o in outs], grads, calls[0]


def compare(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float,
            zero: float = 0.0) -> Tuple[bool, float]:
    """``|a - b| <= atol * max|b| + rtol * |b|``, and max|a - b| / max|b|;
    both below ``zero`` (in absolute value): equal (both zero up to
    rounding)."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    if zero and scale < zero and (float(a.abs().max()) if a.numel() else 0.0) < zero:
        return True, 0.0
    diff = (a - b).abs()
    ok = bool((diff <= atol * scale + rtol * b.abs()).all()) and bool(torch.isfinite(a).all())
    worst = float(diff.max()) if diff.numel() else 0.0
    return ok, worst / scale if scale else worst


def smoke(arch: str, size: int, batch: int, device: torch.device, rtol: float = 1e-4,
          atol: float = 1e-4) -> dict:
    """The smoke checks; ``passed``: all of them."""
    checks = []
    torch.manual_seed(0)
    kw = dict(out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    fused = ClusterFormer(arch, clustering_cfg=dict(fused=True), **kw)
    with quiet_init_report():
        fused.init_weights()
    plain = ClusterFormer(arch, clustering_cfg=dict(fused=False), **kw)
    plain.load_state_dict(fused.state_dict())
    fused.to(device)
    plain.to(device)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    n_params = sum(1 for p in fused.parameters() if p.requires_grad)
    for dtype in ('fp32', 'bf16'):
        name = f'forward + backward, {dtype}{" autocast" if dtype == "bf16" else ""}'
        try:
            start = time.perf_counter()
            outs, grads, calls = step(fused, x, dtype)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            ms = (time.perf_counter() - start) * 1e3
            bad_out = [i for i, o in enumerate(outs) if not bool(torch.isfinite(o).all())]
            bad_grad = [n for n, g in grads.items() if not bool(torch.isfinite(g).all())]
            passed = not bad_out and not bad_grad and bool(grads) and calls > 0
            detail = (f"outputs {', '.join('x'.join(map(str, o.shape[1:])) for o in outs)}"
                      f"{' finite' if not bad_out else f' NOT finite: {bad_out}'}; "
                      f'{len(grads)}/{n_params} parameter gradients'
                      f"{' finite' if not bad_grad else f' NOT finite: {bad_grad[:3]}'}; "
                      f'fused E/M step called {calls} times; {ms:.0f} ms')
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            passed, detail = False, f'{type(exc).__name__}: {str(exc).strip()[:200]}'
        checks.append(dict(check=name, passed=passed, detail=detail))
    try:
        with exact_fp32():
            outs_f, grads_f, _ = step(fused, x, 'fp32')
            outs_p, grads_p, calls_p = step(plain, x, 'fp32')
        results = [compare(a, b, rtol, atol) for a, b in zip(outs_f, outs_p)]
        worst = max(r[1] for r in results)
        checks.append(dict(
            check=f'fused E/M = plain formulas, fp32 outputs (rtol {rtol:g}, atol {atol:g} '
            '* max|plain|)', passed=all(r[0] for r in results) and len(outs_f) == len(outs_p)
            and calls_p == 0, detail=f'{len(results)} outputs, largest |fused - plain| / '
            f'max|plain| {worst:.1e}; plain path: fused step called {calls_p} times'))
        names = sorted(set(grads_f) | set(grads_p))
        missing = [n for n in names if n not in grads_f or n not in grads_p]
        # gradients below ZERO_GRAD of the largest one in both models are zero
        # up to rounding (the center queries' bias: the centered logits
        # cancel it) and count as equal
        floor = ZERO_GRAD * max((float(g.abs().max()) for g in grads_p.values()), default=0.)
        results = {n: compare(grads_f[n], grads_p[n], rtol, atol, floor) for n in names
                   if n not in missing}
        zero = sum(1 for n in results if float(grads_p[n].abs().max()) < floor)
        worst_name = max(results, key=lambda n: results[n][1]) if results else '-'
        failed = [n for n, r in results.items() if not r[0]]
        checks.append(dict(
            check='fused E/M = plain formulas, fp32 parameter gradients',
            passed=not failed and not missing and bool(results),
            detail=f'{len(results)} gradients, largest |fused - plain| / max|plain| '
            f'{results[worst_name][1] if results else float("nan"):.1e} ({worst_name}); '
            f'{zero} zero up to rounding in both (< {ZERO_GRAD:g} of the largest)'
            + (f'; not within tolerance: {failed[:3]}' if failed else '')
            + (f'; gradient in one model only: {missing[:3]}' if missing else '')))
    except Exception as exc:  # noqa: BLE001
        checks.append(dict(check='fused E/M = plain formulas, fp32', passed=False,
                           detail=f'{type(exc).__name__}: {str(exc).strip()[:200]}'))
    del fused, plain
    return dict(arch=arch, size=size, batch=batch, device=str(device), rtol=rtol, atol=atol,
                passed=all(c['passed'] for c in checks), checks=checks)


# ------------------------------------------------------------------ report
def bench_argv(args: argparse.Namespace, sizes: dict, time_limit: float) -> List[str]:
    """benchmark.py's arguments for this run."""
    size, batches = sizes['size'], sizes['batches']
    argv = ['--archs', sizes['arch'], '--sizes', str(size), '--train-sizes', str(size),
            '--batch-sizes', *map(str, batches), '--modes', 'forward', 'train',
            '--dtypes', 'bf16', '--device', args.device, '--repeats', str(args.repeats),
            '--warmup', str(args.warmup), '--optimizer', args.optimizer,
            '--max-batch-pixels', str(max(batches) * size * size),
            '--time-limit', f'{max(time_limit, 1.0):.0f}', '--out', '']
    return argv + (['--compile'] if args.compile else [])


def versions(device: torch.device) -> str:
    text = f'torch {torch.__version__}'
    if device.type == 'cuda':
        text += f', CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}'
    return text + f', Python {platform.python_version()}, {os.cpu_count()} CPU cores'


def report(args: argparse.Namespace, command: str, device: torch.device, smoke_result: dict,
           result: dict, wall_s: float, note: str = '') -> str:
    """The Markdown section; ``result``: the benchmark's (without an
    ``optimizer`` entry: not run), with the CUDA targets."""
    bench = load_benchmark()
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'no GPU (CPU)'
    title = f'## GPU check: {gpu}, {datetime.date.today().isoformat()}'
    if args.quick:
        title += (' (quick mode: toy sizes, a test of the script, not a measurement)'
                  if device.type == 'cuda' else
                  ' (CPU quick mode: a test of the script, not GPU figures)')
    sizes = QUICK if args.quick else FULL
    lines = [title, '', f'- {versions(device)}', f'- command: `{command}`',
             f'- wall time: {wall_s:.0f} s (limit {args.time_limit:.0f} s)']
    if note:
        lines.append(f'- {note}')
    lines += ['', f"### Smoke test (ClusterFormer-{smoke_result['arch']}, batch "
              f"{smoke_result['batch']}, {smoke_result['size']} px, {smoke_result['device']})",
              '', '| check | result | detail |', '|---|---|---|']
    for c in smoke_result['checks']:
        lines.append(f"| {c['check']} | {'pass' if c['passed'] else 'FAIL'} | {c['detail']} |")
    lines += ['', f"### Benchmark (ClusterFormer-{sizes['arch']} vs "
              f"{bench.SWIN_NAME[sizes['arch']]}, bf16 autocast, batch "
              f"{' and '.join(map(str, sizes['batches']))} at {sizes['size']} px)", '']
    if 'optimizer' not in result:
        lines += ['not run', '', 'Targets:', '', bench.targets_markdown(result['targets'])]
    else:
        lines += [bench.header(result), '', bench.markdown(result)]
    return '\n'.join(lines) + '\n'


class _TimeLimit(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TimeLimit()


def main(argv: Optional[List[str]] = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    command = 'python tools/analysis/gpu_check.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if args.device == 'cuda' and not torch.cuda.is_available():
        print(f'gpu_check: torch {torch.__version__} sees no CUDA device (built with CUDA '
              f'{torch.version.cuda or "none"}); run it on a GPU machine, or use --device cpu '
              '--quick to test the script on the CPU', file=sys.stderr, flush=True)
        return NO_CUDA
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    bench = load_benchmark()
    rows: List[dict] = []
    smoke_result = dict(arch=sizes['arch'], size=sizes['smoke_size'],
                        batch=sizes['smoke_batch'], device=str(device), passed=False,
                        checks=[])
    result, note, code = None, '', 0
    use_alarm = hasattr(signal, 'SIGALRM')
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(int(args.time_limit + HARD_MARGIN_S))
    try:
        print(f'gpu_check: smoke test on {device} ...', flush=True)
        smoke_result = smoke(sizes['arch'], sizes['smoke_size'], sizes['smoke_batch'], device,
                             args.rtol, args.atol)
        for c in smoke_result['checks']:
            print(f"  {'pass' if c['passed'] else 'FAIL'}: {c['check']}: {c['detail']}",
                  flush=True)
        if not args.no_benchmark:
            left = args.time_limit - (time.monotonic() - started)
            bargs = bench.parse_args(bench_argv(args, sizes, left))
            print(f'gpu_check: benchmark ({left:.0f} s left) ...', flush=True)
            result = bench.benchmark(bargs, rows)
    except _TimeLimit:
        code = TIMED_OUT
        note = (f'stopped by the time limit ({args.time_limit:.0f} + {HARD_MARGIN_S} s): '
                'partial results')
        print(f'gpu_check: {note}', flush=True)
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    if result is None and rows:  # interrupted: what was measured
        result = dict(machine=bench.machine_info(device), repeats=args.repeats,
                      warmup=args.warmup, optimizer=bench.optimizer_info(args.optimizer, device),
                      compile=dict(enabled=args.compile, failures=[]), results=rows,
                      skipped=[], scaling=bench.scaling(rows), profiles=[])
    if result is None:
        result = dict(machine=bench.machine_info(device), results=[], skipped=[], scaling=[],
                      profiles=[])
    result['smoke'] = dict(passed=smoke_result['passed'])
    result['targets'] = bench.targets(result, cuda=True)
    if code == 0 and not smoke_result['passed']:
        code = 1
    wall_s = time.monotonic() - started
    text = report(args, command, device, smoke_result, result, wall_s, note)
    print('\n' + text, flush=True)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'a' if args.append else 'w', encoding='utf-8') as f:
        f.write(('\n' if args.append and f.tell() else '') + text)
    bench.write_json(dict(command=command, quick=args.quick, device=str(device),
                          wall_s=wall_s, time_limit_s=args.time_limit, exit_code=code,
                          complete=code != TIMED_OUT, smoke=smoke_result, benchmark=result,
                          targets=result['targets']), args.json)
    print(f'written: {args.out}\nwritten: {args.json}', flush=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
