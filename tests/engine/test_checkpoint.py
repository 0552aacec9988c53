"""Checkpoints load on torch >= 2.6 with safe loading still on."""
import logging
import os
import pickle

import numpy as np
import pytest
import torch

import mmcf  # noqa: F401  (registers the safe globals)
from helpers import logged
from mmcf.models import ClusterFormer


class Payload:
    """An object that runs a command when unpickled."""

    def __reduce__(self):
        return (os.system, ('touch /tmp/mmcf_pwned',))


def _runner_like_checkpoint():
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('mmcf-test-ckpt')
    for v in (0.5, 0.25, 0.125):
        hub.update_scalar('train/loss', v)
    hub.update_info('iter', 3)
    hub.update_info('np_scalar', np.float64(1.5))
    state = hub.state_dict()
    assert isinstance(state['log_scalars']['train/loss'], HistoryBuffer)
    model = ClusterFormer('test')
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 3, 32, 32))[0].sum().backward()
    opt.step()
    return dict(meta=dict(epoch=1, iter=3, seed=0, cfg='model = dict()',
                          dataset_meta=dict(classes=('a', 'b')),
                          np_array=np.arange(4, dtype=np.int64)),
                state_dict=model.state_dict(), optimizer=opt.state_dict(),
                message_hub=state)


def test_runner_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / 'ok.pth'
    ckpt = _runner_like_checkpoint()
    torch.save(ckpt, path)
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    assert loaded['meta']['epoch'] == 1
    hb = loaded['message_hub']['log_scalars']['train/loss']
    assert hb.mean() == pytest.approx((0.5 + 0.25 + 0.125) / 3)
    assert loaded['message_hub']['runtime_info']['np_scalar'] == 1.5
    np.testing.assert_array_equal(loaded['meta']['np_array'], np.arange(4))
    # and through mmengine, which calls torch.load without weights_only
    from mmengine.runner import CheckpointLoader
    assert CheckpointLoader.load_checkpoint(str(path), map_location='cpu')['meta']['iter'] == 3


def test_tampered_checkpoint_is_refused(tmp_path):
    marker = '/tmp/mmcf_pwned'
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / 'evil.pth'
    ckpt = _runner_like_checkpoint()
    ckpt['meta']['hook'] = Payload()
    torch.save(ckpt, path)
    from mmengine.runner import load_checkpoint
    from mmcf.engine import CheckpointError
    # mmengine's loader goes through mmcf's: refused naming the file, and
    # without torch's advice to turn safe loading off
    with pytest.raises(CheckpointError, match=f'checkpoint {path} is refused') as e:
        load_checkpoint(ClusterFormer('test'), str(path), map_location='cpu')
    assert 'weights_only=False' not in str(e.value)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location='cpu')
    assert not os.path.exists(marker)


def test_unlisted_class_is_refused(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {}, 'obj': logging.Formatter()}, path)
    with pytest.raises(pickle.UnpicklingError, match='Formatter'):
        torch.load(path, map_location='cpu')


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    from mmengine.runner import load_checkpoint
    from mmcf.engine import CheckpointError
    path = tmp_path / 'small.pth'
    torch.save({'state_dict': ClusterFormer('test').state_dict()}, path)
    # arch keys only: the same in the flat and the clustering_cfg signature
    other = ClusterFormer(dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                               num_centers=4))
    # a checkpoint that fits under half of the model is refused, strict or not
    for strict in (True, False):
        with pytest.raises(CheckpointError, match=rf'{path}: only \d+ of the \d+ weights of '
                           r'ClusterFormer.*patch_embed.projection.weight \(32, 3, 4, 4\) vs '
                           r'\(16, 3, 4, 4\)'):
            load_checkpoint(other, str(path), strict=strict)
    # one that fits more than half: strict refuses, non-strict loads and
    # names the mismatched keys in the log (mmengine's behaviour)
    model = ClusterFormer('test')
    state = model.state_dict()
    state['patch_embed.projection.weight'] = torch.zeros(8, 3, 4, 4)
    torch.save({'state_dict': state}, path)
    with pytest.raises(RuntimeError, match='size mismatch for patch_embed.projection.weight'):
        load_checkpoint(model, str(path), strict=True)
    with logged('mmcf-ckpt-test') as (logger, records):
        load_checkpoint(model, str(path), strict=False, logger=logger)
    text = '\n'.join(r.getMessage() for r in records)
    assert 'size mismatch for patch_embed.projection.weight' in text


class GetattrPayload:
    """Reaches for attributes through getattr, as HistoryBuffer's table does."""

    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return (getattr, (self.target, self.name))


@pytest.mark.parametrize('target,name', [('hb', '__init__'), ('getattr', '__self__'),
                                         ('ndarray', 'tofile')])
def test_getattr_only_reaches_history_buffer_statistics(tmp_path, target, name):
    from mmengine.logging import HistoryBuffer
    obj = {'hb': HistoryBuffer, 'getattr': getattr, 'ndarray': np.ndarray}[target]
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {}, 'x': GetattrPayload(obj, name)}, path)
    with pytest.raises(pickle.UnpicklingError, match='allows getattr only'):
        torch.load(path, map_location='cpu')
    # the statistics methods themselves load
    torch.save({'m': GetattrPayload(HistoryBuffer, 'mean')}, path)
    assert torch.load(path, map_location='cpu')['m'] is HistoryBuffer.mean


# --------------------------------------------------------------------------
# refusals that name their cause
# --------------------------------------------------------------------------
def test_code_payload_is_refused_with_a_plain_message(tmp_path):
    """torch 2.13 words the refusal "unsupported GLOBAL posix.system whose
    module posix is blocked"; the message names the global, says what the
    file holds and never suggests turning safe loading off."""
    from mmcf.engine import CheckpointError, load_checkpoint_file
    path = tmp_path / 'payload.pth'
    torch.save({'state_dict': {}, 'meta': {'x': Payload()}}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_file(str(path))
    text = str(e.value)
    assert f'checkpoint {path} is refused: it holds code or objects' in text
    assert f'global {os.system.__module__}.system' in text  # posix.system
    assert 'weights_only=False' not in text and 'will likely succeed' not in text
    assert 'truncated or corrupt' not in text


#: what torch's UnpicklingError says and ours must not show, not even as its cause
WEIGHTS_ONLY_ADVICE = ('will likely succeed', 'WeightsUnpickler', 'weights_only` set to `False`',
                       'Weights only load failed')


def test_refusal_traceback_hides_the_weights_only_advice(tmp_path):
    """The refusal is raised ``from None``: neither the traceback a user sees
    (printed by a real uncaught raise) nor the exception chain carries
    torch's error and its advice to re-run with weights_only=False."""
    import subprocess
    import sys
    import traceback
    from mmcf.engine import CheckpointError, load_checkpoint_file
    path = tmp_path / 'payload.pth'
    torch.save({'state_dict': {}, 'meta': {'x': Payload()}}, path)
    refusal = f'checkpoint {path} is refused: it holds code or objects'
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_file(str(path))
    assert e.value.__cause__ is None and e.value.__suppress_context__ is True
    formatted = ''.join(traceback.format_exception(type(e.value), e.value, e.value.__traceback__))
    proc = subprocess.run(
        [sys.executable, '-c', 'import sys; from mmcf.engine import load_checkpoint_file; '
         'load_checkpoint_file(sys.argv[1])', str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 1
    for text in (formatted, proc.stdout):
        assert refusal in text and f'global {os.system.__module__}.system' in text
        assert 'mmcf.engine.safe_load.CheckpointError' in text
        assert not [a for a in WEIGHTS_ONLY_ADVICE if a in text], text
        assert 'During handling of the above exception' not in text
        assert 'direct cause' not in text


def test_corrupt_file_error_keeps_a_cause_without_the_advice(tmp_path):
    """A corrupt file trips torch's weights-only unpickler, whose error torch
    replaces with one advising weights_only=False: ours names and chains the
    unpickler's own error instead; a truncated file chains torch's EOFError."""
    import traceback
    from mmcf.engine import CheckpointError, load_checkpoint_file
    path = tmp_path / 'garbage.pth'
    path.write_bytes(b'x' * 100)
    with pytest.raises(CheckpointError, match=r'garbage\.pth cannot be read \(truncated or '
                       r'corrupt\?\): UnpicklingError: Unsupported operand') as e:
        load_checkpoint_file(str(path))
    assert isinstance(e.value.__cause__, pickle.UnpicklingError)
    formatted = ''.join(traceback.format_exception(type(e.value), e.value, e.value.__traceback__))
    assert 'direct cause' in formatted
    assert not [a for a in WEIGHTS_ONLY_ADVICE if a in formatted], formatted
    cut = tmp_path / 'cut.pth'
    torch.save({'meta': {}, 'state_dict': {'w': torch.zeros(1000)}}, cut)
    cut.write_bytes(cut.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r'cut\.pth cannot be read') as e:
        load_checkpoint_file(str(cut))
    assert e.value.__cause__ is not None


@pytest.mark.parametrize('message,named', [
    ('Unsupported global: GLOBAL os.system was not an allowed global by default.',
     'global os.system'),
    ('Trying to load unsupported GLOBAL posix.system whose module posix is blocked.',
     'global posix.system'),
    ('invalid load key, \'x\'.', None)])
def test_unsafe_global_wordings(message, named):
    from mmcf.engine.safe_load import _unsafe_global
    assert _unsafe_global(pickle.UnpicklingError('Weights only load failed.\n' + message)) \
        == named


def test_nan_weights_are_refused(tmp_path):
    from mmcf.engine import CheckpointError, check_checkpoint_finite
    state = ClusterFormer('test').state_dict()
    check_checkpoint_finite({'state_dict': state}, 'ok.pth')
    state['patch_embed.projection.weight'][0, 0, 0, 0] = float('nan')
    with pytest.raises(CheckpointError, match=r'nan\.pth holds NaN or infinite values in 1 '
                       r"weight tensor\(s\), e.g. \['patch_embed\.projection\.weight'\]"):
        check_checkpoint_finite({'state_dict': state}, 'nan.pth')


def test_load_from_with_another_head_warns_with_the_count():
    """Fine-tuning with another head (more than half of the weights load):
    a warning counting the weights left at their initial values."""
    from mmcf.engine import check_checkpoint_matches_model
    model = ClusterFormer('test')
    state = dict(model.state_dict())
    state['patch_embed.projection.weight'] = torch.zeros(1, 3, 4, 4)
    with logged('mmcf-load-from-test') as (logger, records):
        check_checkpoint_matches_model(model, {'state_dict': state}, 'ft.pth', strict=False,
                                       logger=logger)
    text = '\n'.join(r.getMessage() for r in records)
    total = len(model.state_dict())
    assert f'load_from ft.pth: 1 of the {total} weights of ClusterFormer are NOT loaded' in text
    assert '1 shape mismatches' in text


# --------------------------------------------------------------------------
# the work-dir lock
# --------------------------------------------------------------------------
def test_work_dir_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    import json
    import socket
    import subprocess
    import sys
    from mmcf.engine import WorkDirLock, WorkDirLockedError
    work = tmp_path / 'work'
    with WorkDirLock(str(work)):
        # another open of the lock file (another run) is refused while held
        with pytest.raises(WorkDirLockedError,
                           match=rf'{work} is in use by another training \(pid {os.getpid()} '
                           rf'on host {socket.gethostname()}'):
            WorkDirLock(str(work)).acquire()
    # released: the next run gets it without a word
    lock = WorkDirLock(str(work)).acquire()
    lock.release()
    # a lock file left by a process that died (no flock held): taken over
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    (work / '.mmcf-train.lock').write_text(json.dumps(
        dict(pid=dead.pid, host=socket.gethostname(), started='then')))
    with logged('mmcf-lock-test') as (logger, records):
        lock = WorkDirLock(str(work), logger=logger).acquire()
    assert json.loads((work / '.mmcf-train.lock').read_text())['pid'] == os.getpid()
    lock.release()
    assert f'taking over the lock of a run that is no longer running (pid {dead.pid}' in \
        records[0].getMessage()
