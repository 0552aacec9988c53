"""Reliability: a killed run resumes with nothing lost, CPU distributed
training matches one process, mixed precision stays finite.

Runs that must be separate processes (SIGKILL, torchrun, mim) are
subprocesses; the others call ``tools/train.py``'s ``main`` in this process,
which saves the interpreter start-up (~10-20 s on 2 shared cores) per run.
What runs on which demo (``demo_configs.DEMOS``) and why:

* the SIGKILL matrix on the classification demo only: it is epoch-based,
  the case that needs ``RNGStateHook``; the atomic writing it tests is the
  same for every task;
* exact resume (no kill) on every iteration-based demo;
* distributed on the classification demo (the launch path is the same for
  every task);
* bf16 for 50 iterations on every demo.
"""
import json
import logging
import math
import os
import os.path as osp
import shutil
import signal
import socket
import time

import pytest
import torch
from mmengine.config import Config

from demo_configs import DEMOS
from fault_injection import KILL_DURING_SAVE_ENV, with_fault_injection
from helpers import (ROOT, default_scope_kept, load_tool, logged, mim_runs_this_checkout,
                     python, run)

from mmcf.engine import CheckpointError, find_resume_checkpoint, load_checkpoint_file

IDS = [d.name for d in DEMOS]
CLS = DEMOS[0]
ITER_DEMOS = [d for d in DEMOS if not d.by_epoch]
DETERMINISTIC = ['randomness.seed=0', 'randomness.deterministic=True']

train_tool = load_tool('train')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _args(demo, shapes_root, work, args=()):
    """tools/train.py arguments: 9 iterations, a checkpoint every 3, keep 2."""
    return [demo.config, '--work-dir', str(work), *args,
            '--cfg-options', *demo.data_options(shapes_root), *demo.schedule(),
            f'train_dataloader.batch_size={demo.batch_size}',
            'default_hooks.checkpoint.max_keep_ckpts=2', 'default_hooks.logger.interval=1',
            *DETERMINISTIC]


def _train_subprocess(demo, shapes_root, work, args=(), env=None, hooks=()):
    """tools/train.py in a subprocess, on the demo config plus
    tests/fault_injection.py and ``hooks``."""
    config = with_fault_injection(demo.config, str(work) + '_cfg', hooks)
    argv = _args(demo, shapes_root, work, args)
    return run([python(), osp.join(ROOT, 'tools', 'train.py'), config, *argv[1:]],
               env=env, check=False, timeout=300)


def _train_here(argv):
    """``tools/train.py`` in this process; leaves the default registry scope
    and torch's determinism flag (``randomness.deterministic`` sets it
    globally) as it found them."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with default_scope_kept():
            train_tool.main(argv)
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _assert_same(a, b, where='checkpoint'):
    """Recursively equal: tensors bit-identical, everything else ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f'{where} differs (max |diff| ' \
            f'{(a.double() - b.double()).abs().max().item():.3g})'
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{where}: keys {sorted(map(str, set(a) ^ set(b)))} differ'
        for k in a:
            _assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{where}: lengths {len(a)} vs {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} vs {b!r}'


def _assert_same_training_state(path_a, path_b):
    a = load_checkpoint_file(str(path_a), require=('meta', 'state_dict'))
    b = load_checkpoint_file(str(path_b), require=('meta', 'state_dict'))
    for key in ('epoch', 'iter'):
        assert a['meta'][key] == b['meta'][key], f'meta.{key}'
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        _assert_same(a[key], b[key], key)


@pytest.fixture(scope='module')
def reference_runs(shapes_root, tmp_path_factory):
    """One uninterrupted run per demo (9 iterations), made on first use."""
    done = {}

    def get(demo):
        if demo.name not in done:
            work = tmp_path_factory.mktemp(f'ref_{demo.name}')
            _train_here(_args(demo, shapes_root, work))
            done[demo.name] = work
        return done[demo.name]
    return get


def _last_checkpoint(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return osp.basename(f.read().strip())


def _temporaries(work):
    return [n for n in os.listdir(work) if '.mmcf-tmp-' in n]


# --------------------------------------------------------------------------
# resuming
# --------------------------------------------------------------------------
def test_killed_while_writing_and_between_checkpoints_resumes_bit_identical(
        reference_runs, shapes_root, tmp_path):
    """9 iterations (3 epochs of 3), a checkpoint after 3, 6, 9. SIGKILL half
    way through writing the checkpoint after iteration 6; ``--resume``; SIGKILL
    again after iteration 8 (mid-epoch, between checkpoints); ``--resume``.
    The end state -- weights, optimizer and scheduler state, counters -- is
    the uninterrupted run's, bit for bit (one thread, deterministic)."""
    demo = CLS
    ref = reference_runs(demo)
    work = tmp_path / 'work'

    code, out = _train_subprocess(demo, shapes_root, work,
                                  env={KILL_DURING_SAVE_ENV: demo.ckpt_name(6)})
    assert code == -signal.SIGKILL, f'expected SIGKILL, got {code}:\n{out[-3000:]}'
    # the half-written file never got the checkpoint's name
    assert _last_checkpoint(work) == demo.ckpt_name(3)
    assert not (work / demo.ckpt_name(6)).exists()
    leftovers = _temporaries(work)
    assert len(leftovers) == 1 and leftovers[0].startswith('.' + demo.ckpt_name(6)), leftovers

    code, out = _train_subprocess(demo, shapes_root, work, args=['--resume'],
                                  hooks=[dict(type='KillAtIterHook', after_iters=8)])
    assert code == -signal.SIGKILL, f'expected SIGKILL, got {code}:\n{out[-3000:]}'
    assert 'resumed epoch: 1, iter: 3' in out
    assert 'restored the python, numpy and torch RNG states' in out
    assert 'a checkpoint write interrupted in an earlier run' in out
    assert _temporaries(work) == []
    assert _last_checkpoint(work) == demo.ckpt_name(6)

    code, out = _train_subprocess(demo, shapes_root, work, args=['--resume'])
    assert code == 0, out[-6000:]
    assert 'resumed epoch: 2, iter: 6' in out
    final = demo.ckpt_name(9)
    _assert_same_training_state(ref / final, work / final)
    # max_keep_ckpts=2 still holds after two resumes
    assert sorted(n for n in os.listdir(work) if n.startswith(('epoch_', 'iter_'))) == \
        sorted([demo.ckpt_name(6), demo.ckpt_name(9)])


def test_resume_skips_a_truncated_checkpoint(reference_runs, tmp_path, caplog):
    """A checkpoint cut off by another writer (truncated by hand here) is
    skipped with a warning naming it, also when last_checkpoint names it;
    ``--resume`` takes the one before."""
    ref = reference_runs(CLS)
    work = tmp_path / 'work'
    work.mkdir()
    good, bad = work / CLS.ckpt_name(6), work / CLS.ckpt_name(9)
    shutil.copy(ref / good.name, good)
    data = (ref / bad.name).read_bytes()
    bad.write_bytes(data[:len(data) // 3])
    (work / 'last_checkpoint').write_text(str(bad))

    with caplog.at_level(logging.WARNING, logger='mmcf-test'):
        assert find_resume_checkpoint(str(work), logging.getLogger('mmcf-test')) == str(good)
    assert f'cannot resume from {bad}, skipping it' in caplog.text
    assert 'truncated or corrupt' in caplog.text

    cfg = train_tool.build_config(train_tool.parse_args(
        [CLS.config, '--work-dir', str(work), '--resume']))
    assert cfg.resume and cfg.load_from == str(good)


@pytest.mark.parametrize('demo', ITER_DEMOS, ids=[d.name for d in ITER_DEMOS])
def test_iteration_based_demo_resumes_bit_identical(demo, reference_runs, shapes_root,
                                                    tmp_path):
    """Resuming an iteration-based demo from the checkpoint after iteration 6
    (mmengine replays the data loader) ends with the uninterrupted run's
    state, bit for bit."""
    ref = reference_runs(demo)
    work = tmp_path / 'work'
    work.mkdir()
    shutil.copy(ref / demo.ckpt_name(6), work)
    _train_here(_args(demo, shapes_root, work, ['--resume']))
    _assert_same_training_state(ref / demo.ckpt_name(9), work / demo.ckpt_name(9))


# --------------------------------------------------------------------------
# distributed on the CPU
# --------------------------------------------------------------------------
# Losses of the first 3 iterations, 2 processes x batch B/2 (gloo, mean of the
# two ranks' losses) against 1 process x batch B, same seed and samples
# (DefaultSampler gives rank r the samples r, r+2, ...; RandomFlip off since
# each process draws its own flips). The runs differ only in float32
# summation order (per-rank means, gradient all-reduce); measured on the
# classification demo: 1.4e-7 relative at most, both launchers (2026-11-26),
# so 1e-5 leaves 70x margin and still catches a wrong batch, sample split or
# gradient average (those change the loss by > 1e-3).
DIST_RTOL = 1e-5


def _loss_config(demo, folder, **top_level):
    """The demo config plus LossDumpHook (every rank's losses per iteration
    in ``<work_dir>/losses_rank<R>.jsonl``) and ``top_level`` settings."""
    return with_fault_injection(demo.config, str(folder), [dict(type='LossDumpHook')],
                                **top_level)


def _losses(work, ranks):
    per_rank = []
    for r in range(ranks):
        with open(osp.join(work, f'losses_rank{r}.jsonl')) as f:
            per_rank.append([json.loads(line)['loss'] for line in f])
    return [sum(v) / ranks for v in zip(*per_rank)]


@pytest.fixture(scope='module')
def dist_setup(shapes_root, tmp_path_factory):
    """The classification demo with LossDumpHook and RandomFlip off, its
    --cfg-options, and the losses of one process with the full batch."""
    demo = CLS
    tmp = tmp_path_factory.mktemp('dist')
    # the centers head leaves the last block's dispatch, FFN and norm3
    # without gradient, which DDP refuses unless told
    config = _loss_config(demo, tmp, find_unused_parameters=True)
    pipeline = Config.fromfile(demo.config).train_dataloader.dataset.pipeline
    flip = [t['type'] for t in pipeline].index('RandomFlip')
    options = [*demo.data_options(shapes_root), *demo.schedule(iters=3),
               f'train_dataloader.dataset.pipeline.{flip}.prob=0.0', *DETERMINISTIC]
    single = tmp / 'single'
    _train_here([config, '--work-dir', str(single), '--cfg-options', *options,
                 f'train_dataloader.batch_size={demo.batch_size}'])
    one = _losses(single, 1)
    assert len(one) == 3
    half = [*options, f'train_dataloader.batch_size={demo.batch_size // 2}']
    return config, half, one


def _assert_matches_one_process(work, one, launcher):
    assert osp.isfile(osp.join(work, CLS.ckpt_name(3)))
    two = _losses(work, 2)
    assert len(two) == len(one)
    diff = max(abs(a - b) / abs(a) for a, b in zip(one, two))
    print(f'{launcher}: max relative loss difference to one process {diff:.2e}')
    for i, (a, b) in enumerate(zip(one, two)):
        assert math.isclose(a, b, rel_tol=DIST_RTOL), f'iteration {i + 1}: {a} vs {b}'


def test_dist_train_sh_on_cpu_matches_one_process(dist_setup, tmp_path):
    config, options, one = dist_setup
    work = tmp_path / 'dist'
    run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work),
         '--cfg-options', *options], env={'PORT': str(_free_port()), 'PYTHON': python()})
    _assert_matches_one_process(work, one, 'dist_train.sh')


def test_mim_train_launcher_pytorch_gpus_2_on_cpu(dist_setup, tmp_path):
    if not mim_runs_this_checkout():
        pytest.skip('mim would run the installed mmcf of another checkout, not this one')
    config, options, one = dist_setup
    mim = osp.join(osp.dirname(python()), 'mim')
    work = tmp_path / 'mim'
    run([mim, 'train', 'mmcf', config, '--launcher', 'pytorch', '--gpus', '2',
         '--port', str(_free_port()), '--work-dir', str(work), '--cfg-options', *options])
    _assert_matches_one_process(work, one, 'mim train')


# --------------------------------------------------------------------------
# mixed precision
# --------------------------------------------------------------------------
def _fifty_iterations(demo, shapes_root, work, amp_args):
    """At least 50 iterations, every loss finite; batch 2 (iteration-based)
    or 4 (epoch-based: whole epochs, 12 iterations each on the fixture).
    Returns the final checkpoint's path."""
    if demo.by_epoch:  # demo.batch_size makes 3 iterations per epoch
        batch = 4
        epochs = -(-50 * batch // (3 * demo.batch_size))
        schedule = [f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=100',
                    f'default_hooks.checkpoint.interval={epochs}']
        final = f'epoch_{epochs}.pth'
    else:
        batch = 2
        schedule = demo.schedule(iters=50, ckpt_every=50)
        final = demo.ckpt_name(50)
    os.makedirs(work)
    _train_here([_loss_config(demo, work), '--work-dir', str(work), *amp_args,
                 '--cfg-options', *demo.data_options(shapes_root), *schedule,
                 f'train_dataloader.batch_size={batch}'])
    losses = _losses(work, 1)
    assert len(losses) >= 50
    assert all(math.isfinite(v) for v in losses), losses
    return work / final


def test_bf16_optim_wrapper_autocasts_on_cpu():
    from mmcf.engine import BF16AmpOptimWrapper
    model = torch.nn.Linear(4, 4)
    wrapper = BF16AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        assert model(torch.ones(1, 4)).dtype == torch.bfloat16
    assert model(torch.ones(1, 4)).dtype == torch.float32


@pytest.mark.parametrize('demo', DEMOS, ids=IDS)
def test_bf16_autocast_trains_50_iterations_on_cpu(demo, shapes_root, tmp_path):
    ckpt = _fifty_iterations(demo, shapes_root, tmp_path / 'bf16', ['--amp-dtype', 'bfloat16'])
    state = load_checkpoint_file(str(ckpt))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='fp16 AmpOptimWrapper needs CUDA')
@pytest.mark.parametrize('demo', DEMOS, ids=IDS)
def test_fp16_amp_trains_50_iterations_on_cuda(demo, shapes_root, tmp_path):
    _fifty_iterations(demo, shapes_root, tmp_path / 'fp16', ['--amp'])


@pytest.mark.parametrize('autocast', [False, True], ids=['float32', 'bf16-autocast'])
def test_clustering_softmax_stable_with_huge_logits(autocast):
    """Logits of ~1e4 (features scaled by 1e3): assignments and centers stay
    finite, every assignment column sums to 1 over the K centers, under
    bf16 autocast too."""
    from mmcf.models.clustering import RecurrentClustering
    torch.manual_seed(0)
    layer = RecurrentClustering(dim=32, head_dim=16, num_iters=3)
    x = torch.randn(2, 64, 32) * 1e3
    centers = torch.randn(2, 8, 32) * 1e3
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out, maps = layer(x, centers, keep_all=True)
    assert out.shape == (2, 8, 32)
    assert torch.isfinite(out).all()
    assert len(maps) == 3
    for m in maps:
        assert torch.isfinite(m).all()
        sums = m.float().sum(dim=-2)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-2)
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


# --------------------------------------------------------------------------
# the best checkpoint, one run per work dir, what --resume accepts
# --------------------------------------------------------------------------
def _best_args(shapes_root, work, epochs):
    """The classification demo validating after every epoch with
    ``EvalCountMetric`` (1, 2, ...: every validation is a new best)."""
    return ['--work-dir', str(work), '--cfg-options', *CLS.data_options(shapes_root),
            f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
            f'train_dataloader.batch_size={CLS.batch_size}',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=2',
            'default_hooks.checkpoint.save_best=fault/count',
            'default_hooks.checkpoint.rule=greater', *DETERMINISTIC]


def test_killed_while_writing_the_best_checkpoint_keeps_the_previous_best(
        shapes_root, tmp_path):
    """mmengine deletes the previous best before writing the new one. SIGKILL
    half way through writing the second best: the first best is intact,
    ``last_checkpoint`` names a complete checkpoint, and ``--resume`` goes on
    (and cleans the half-written temporary)."""
    work = tmp_path / 'work'
    config = with_fault_injection(CLS.config, str(tmp_path / 'cfg'), [],
                                  val_evaluator=dict(type='EvalCountMetric', _delete_=True))
    first, second = 'best_fault_count_epoch_1.pth', 'best_fault_count_epoch_2.pth'
    code, out = run([python(), osp.join(ROOT, 'tools', 'train.py'), config,
                     *_best_args(shapes_root, work, 2)],
                    env={KILL_DURING_SAVE_ENV: second}, check=False, timeout=300)
    assert code == -signal.SIGKILL, f'expected SIGKILL, got {code}:\n{out[-3000:]}'
    assert 'The best checkpoint with 1.0000 fault/count at 1 epoch is saved' in out
    assert not (work / second).exists()
    best = load_checkpoint_file(str(work / first), require=('state_dict', 'meta'))
    assert best['meta']['epoch'] == 1
    assert _last_checkpoint(work) == 'epoch_2.pth'
    assert load_checkpoint_file(str(work / 'epoch_2.pth'))['meta']['epoch'] == 2
    assert [n for n in _temporaries(work) if n.startswith('.' + second)]

    # resume (in this process: the kill switch is not installed here)
    _train_here([config, '--resume', *_best_args(shapes_root, work, 3)])
    assert _temporaries(work) == []
    assert (work / first).exists(), 'the previous best was lost'
    assert load_checkpoint_file(str(work / first))['meta']['epoch'] == 1
    assert _last_checkpoint(work) == 'epoch_3.pth'


def test_new_best_replaces_the_previous_one_only_when_complete(shapes_root, tmp_path):
    """Without a kill the previous best is still removed, after the new one."""
    work = tmp_path / 'work'
    config = with_fault_injection(CLS.config, str(tmp_path / 'cfg'), [],
                                  val_evaluator=dict(type='EvalCountMetric', _delete_=True))
    from fault_injection import EvalCountMetric
    EvalCountMetric.evaluations = 0
    _train_here([config, *_best_args(shapes_root, work, 2)])
    bests = sorted(n for n in os.listdir(work) if n.startswith('best_'))
    assert bests == ['best_fault_count_epoch_2.pth']
    ckpt = load_checkpoint_file(str(work / 'epoch_2.pth'))
    assert ckpt['message_hub']['runtime_info']['best_ckpt'].endswith(bests[0])


def test_two_trainings_into_one_work_dir(shapes_root, tmp_path):
    """A second training into a work dir held by a live run is refused,
    naming the run (pid, host); once that run is SIGKILLed its lock is
    stale and the next run takes it over."""
    import subprocess
    work = tmp_path / 'work'
    marker = tmp_path / 'holding'
    config = with_fault_injection(CLS.config, str(tmp_path / 'cfg'),
                                  [dict(type='HoldAtStartHook', marker=str(marker))])
    argv = _args(CLS, shapes_root, work)
    env = {**os.environ, 'OMP_NUM_THREADS': '1',
           'PYTHONPATH': os.pathsep.join([osp.join(ROOT, 'tests'),
                                          os.environ.get('PYTHONPATH', '')])}
    first = subprocess.Popen([python(), osp.join(ROOT, 'tools', 'train.py'), config,
                              *argv[1:]], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if marker.exists() or first.poll() is not None:
                break
            time.sleep(0.2)
        assert marker.exists(), f'the first run did not start (exit {first.poll()})'
        from mmcf.engine import WorkDirLockedError
        with pytest.raises(WorkDirLockedError,
                           match=rf'{work} is in use by another training \(pid {first.pid} '
                           rf'on host {socket.gethostname()}'):
            _train_here(_args(CLS, shapes_root, work))
        assert not [n for n in os.listdir(work) if n.endswith('.pth')]
    finally:
        first.kill()
        first.wait()
    # the killed run's lock is stale: taken over, with a warning naming it
    with logged() as (_, records):
        _train_here(_args(CLS, shapes_root, work))
    text = '\n'.join(r.getMessage() for r in records)
    assert f'taking over the lock of a run that is no longer running (pid {first.pid}' in text
    assert (work / CLS.ckpt_name(9)).exists()


def _weights_only_copy(src, dst):
    """What a best_*.pth holds: weights and meta, no optimizer/scheduler."""
    ckpt = load_checkpoint_file(str(src))
    torch.save({'meta': ckpt['meta'], 'state_dict': ckpt['state_dict']}, dst)


def test_resume_refuses_a_checkpoint_without_training_state(reference_runs, shapes_root,
                                                            tmp_path):
    """``--resume best_*.pth`` would restart AdamW and the warm-up mid-run
    while logging "resumed epoch: 2": refused, naming the file and the flag."""
    best = tmp_path / 'best_accuracy_top1_epoch_2.pth'
    _weights_only_copy(reference_runs(CLS) / CLS.ckpt_name(6), best)
    work = tmp_path / 'work'
    with pytest.raises(CheckpointError, match=rf"--resume {best}: the checkpoint has no "
                       r"\['optimizer', 'param_schedulers'\] entry.*--resume-weights-only"):
        _train_here(_args(CLS, shapes_root, work, ['--resume', str(best)]))
    assert not work.exists() or not [n for n in os.listdir(work) if n.endswith('.pth')]


def test_resume_weights_only_says_so_and_restarts_the_schedule(reference_runs, shapes_root,
                                                               tmp_path):
    best = tmp_path / 'best.pth'
    ref = reference_runs(CLS)
    _weights_only_copy(ref / CLS.ckpt_name(6), best)
    work = tmp_path / 'work'
    with logged() as (_, records):
        _train_here(_args(CLS, shapes_root, work, ['--resume', str(best),
                                                   '--resume-weights-only']))
    text = '\n'.join(r.getMessage() for r in records)
    assert f'--resume-weights-only: loading ONLY THE WEIGHTS of {best}' in text
    assert 'training starts at epoch/iter 0 with a fresh optimizer' in text
    # a new 3-epoch schedule from those weights: all three epochs trained
    final = load_checkpoint_file(str(work / CLS.ckpt_name(9)))
    assert final['meta']['epoch'] == 3 and final['meta']['iter'] == 9
    assert not torch.equal(final['state_dict']['backbone.patch_embed.projection.weight'],
                           load_checkpoint_file(str(ref / CLS.ckpt_name(9)))
                           ['state_dict']['backbone.patch_embed.projection.weight'])


@pytest.mark.parametrize('case', ['missing', 'empty'])
def test_resume_with_nothing_to_resume_warns(tmp_path, case):
    work = tmp_path / 'work'
    if case == 'empty':
        work.mkdir()
    with logged() as (_, records):
        cfg = train_tool.build_config(train_tool.parse_args(
            [CLS.config, '--work-dir', str(work), '--resume']))
    assert not cfg.resume and cfg.load_from is None
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    what = 'does not exist' if case == 'missing' else 'holds no checkpoint that loads'
    assert f'--resume: nothing to resume, starting from scratch (work dir {work} {what})' \
        in warned


def test_non_utf8_last_checkpoint_falls_back_to_newest(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for epoch in (1, 2):
        torch.save({'meta': {'epoch': epoch}, 'state_dict': {'w': torch.ones(1)}},
                   work / f'epoch_{epoch}.pth')
    (work / 'last_checkpoint').write_bytes(b'\xff\xfe\x00garbage\x9c')
    with logged() as (_, records):
        assert find_resume_checkpoint(str(work)) == str(work / 'epoch_2.pth')
    assert any('last_checkpoint is not UTF-8 text' in r.getMessage() for r in records)
