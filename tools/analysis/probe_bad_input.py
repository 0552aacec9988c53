"""A probe of bad input and faults through mmcf's entry points, with a table.

    python tools/analysis/probe_bad_input.py [--cases ID ...] [--markdown]

Each case (``CASES``) builds one bad input or fault (a config option, a
checkpoint, an image, an annotation, a data folder) on a small copy of the
shapes data set, runs it through a public entry point (``tools/train.py``,
``tools/test.py``, ``tools/visualize_clusters.py``, the dataset tools, the
stock inferencers) in this process, and compares what happened with what a
user should get:

* ``handled``: the run finishes and its result is right;
* ``refused``: it stops with an error whose message names the cause
  (every listed word appears in the exception's text).

A case that finishes where it should have been refused is **silent**, one
that stops with an error not naming its cause **unclear**. The table
(``--markdown``) lists case, expected and result; docs/en/reliability.md
holds the last one. ``tests/engine/test_probe.py`` runs every case.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
SEG = osp.join(ROOT, 'configs', 'segmentation', 'clusterformer-test_1xb8-1k_shapes-64x64.py')
CLS = osp.join(ROOT, 'configs', 'classification', 'clusterformer-test_1xb32-12e_shapes.py')
DET = osp.join(ROOT, 'configs', 'detection', 'clusterformer-test_1xb8-1k_shapes-inst.py')


class Case(NamedTuple):
    id: str
    what: str  # the bad input, for the table
    expected: str  # 'handled' or 'refused'
    words: Sequence[str]  # what a refusal must name
    run: Callable[['Context'], None]


class Context:
    """A copy of the shapes data, a scratch folder and the tools."""

    def __init__(self, data: str, tmp: str) -> None:
        self.data, self.tmp = data, tmp
        self._tools: Dict[str, object] = {}

    def tool(self, name: str):
        if name not in self._tools:
            spec = importlib.util.spec_from_file_location(
                'probe_' + name.replace('/', '_'), osp.join(ROOT, 'tools', f'{name}.py'))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self._tools[name] = mod
        return self._tools[name]

    def path(self, name: str) -> str:
        return osp.join(self.tmp, name)

    def data_options(self, config: str) -> List[str]:
        sub = {SEG: 'semantic', CLS: 'classification', DET: 'coco'}[config]
        root = osp.join(self.data, sub)
        opts = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]
        if config == DET:
            opts += [f'{e}_evaluator.ann_file={root}/annotations/instances_val.json'
                     for e in ('val', 'test')]
        return opts

    def train(self, config: str = SEG, *extra: str, options: Sequence[str] = (),
              work: Optional[str] = None, iters: int = 2) -> str:
        """tools/train.py for ``iters`` iterations (epochs for classification)."""
        work = work or tempfile.mkdtemp(dir=self.tmp)
        sched = [f'train_cfg.max_epochs={iters}'] if config == CLS else \
            [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
             f'default_hooks.checkpoint.interval={iters}']
        batch = ['train_dataloader.batch_size=4'] if config != CLS else \
            ['train_dataloader.batch_size=16']
        self.tool('train').main([config, '--work-dir', work, *extra, '--cfg-options',
                                 *self.data_options(config), *sched, *batch, *options])
        return work

    def image(self, name: str, array: np.ndarray, mode: Optional[str] = None) -> str:
        from PIL import Image
        path = self.path(name)
        Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
        return path

    def checkpoint(self, name: str, obj) -> str:
        import torch
        path = self.path(name)
        torch.save(obj, path)
        return path


# ------------------------------------------------------------------ cases
def _seg_state(ctx: Context) -> dict:
    from mmengine.config import Config
    from mmcf.utils.build import build_model_from_cfg
    return build_model_from_cfg(Config.fromfile(SEG)).state_dict()


def _visualize(ctx: Context, *args: str) -> None:
    ctx.tool('visualize_clusters').main([SEG, *args, '--out-dir', ctx.path('maps')])


def _edit_json(path: str, edit: Callable[[dict], None]) -> None:
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def _coco(ctx: Context, split: str = 'train') -> str:
    return osp.join(ctx.data, 'coco', 'annotations', f'instances_{split}.json')


def _opt(option: str, words: Sequence[str], config: str = SEG, expected: str = 'refused'):
    return lambda ctx: ctx.train(config, options=[option]), expected, words


def _cases() -> List[Case]:
    c: List[Case] = []

    def add(id_, what, expected, words, run):
        c.append(Case(id_, what, expected, tuple(words), run))

    # --- command line and config options (the first three fail in parsing)
    for id_, option, words in [
            ('opt-dict', "model.backbone.init_cfg=dict(type='Pretrained',checkpoint='x')",
             ['init_cfg', 'one by one']),
            ('opt-no-equals', 'model.backbone.arch', ['model.backbone.arch', 'key=value']),
            ('opt-brackets', 'model.backbone.out_indices=[0,1', ['out_indices', 'cannot be read']),
            ('num-centers-0', 'model.backbone.num_centers=0', ['num_centers', 'positive']),
            ('arch-unknown', 'model.backbone.arch=huge', ['huge', 'arch']),
            ('out-index-5', 'model.backbone.out_indices=[5]', ['out_indices', '5']),
            ('frozen-9', 'model.backbone.frozen_stages=9', ['frozen_stages', '9']),
            ('iters-0', 'model.backbone.clustering_cfg.num_iters=0', ['num_iters', '0']),
            ('cluster-type', 'model.backbone.clustering_cfg.type=Kmeans',
             ['Kmeans', 'clustering_cfg.type']),
            ('dispatch-mode', 'model.backbone.dispatch_cfg.mode=gate', ['gate', 'mode']),
            ('center-cfg-key', 'model.backbone.center_init_cfg.ratio=0.5',
             ['center_init_cfg', 'ratio']),
            ('flat-dispatch', 'model.backbone.dispatch_mode=fc',
             ['dispatch_mode', 'dispatch_cfg']),
            ('batch-0', 'train_dataloader.batch_size=0', ['batch_size', '0']),
            ('lr-negative', 'optim_wrapper.optimizer.lr=-1', ['learning rate', '-1']),
            ('max-iters-0', 'train_cfg.max_iters=0', ['train_cfg.max_iters', '0']),
            ('val-interval-0', 'train_cfg.val_interval=0', ['val_interval', '0']),
            ('seed-text', 'randomness.seed=abc', ['randomness.seed', "'abc'"]),
            ('classes-text', 'model.decode_head.num_classes=seven',
             ['num_classes', "'seven'"]),
            ('in-index', 'model.decode_head.in_index=[0,1,2]', ['in_channels', 'in_index']),
    ]:
        add(id_, f'`--cfg-options {option}`', 'refused', words,
            lambda ctx, o=option: ctx.train(SEG, options=[o]))
    add('head-channels', '`--cfg-options model.decode_head.channels=48` (a width that '
        'divides into the heads)', 'handled', (),
        lambda ctx: ctx.train(SEG, options=['model.decode_head.channels=48']))
    add('work-dir-file', '`--work-dir` is an existing file', 'refused', ['work dir', 'a file'],
        lambda ctx: ctx.train(SEG, work=_touch(ctx.path('a_file'))))

    # --- checkpoints
    add('resume-dir', '`--resume` names a folder', 'refused', ['--resume', 'not found'],
        lambda ctx: ctx.train(SEG, '--resume', ctx.tmp))
    add('ckpt-list', 'checkpoint holding a list', 'refused', ['list', 'not a dict'],
        lambda ctx: ctx.train(SEG, options=[f"load_from={ctx.checkpoint('l.pth', [1, 2])}"]))
    add('ckpt-string-weight', 'a weight that is a string', 'refused',
        ['must be tensors', 'backbone.patch_embed.projection.weight (str)'],
        lambda ctx: ctx.train(SEG, options=[f"load_from={_string_weight(ctx)}"]))
    add('ckpt-other-task', '`load_from` a detection checkpoint into segmentation', 'refused',
        ['det.pth', 'only 0 of', 'EncoderDecoder'],
        lambda ctx: ctx.train(SEG, options=[f'load_from={_det_checkpoint(ctx)}']))
    add('ckpt-most-fit', '`load_from` with one head weight of another shape', 'handled', (),
        lambda ctx: ctx.train(SEG, options=[f'load_from={_most_fit(ctx)}']))
    add('ckpt-nan', '`load_from` with NaN weights', 'refused', ['NaN'],
        lambda ctx: ctx.train(SEG, options=[f'load_from={_nan_checkpoint(ctx)}']))
    add('test-no-state', '`tools/test.py` with a checkpoint of raw weights (no state_dict)',
        'handled', (), lambda ctx: ctx.tool('test').main([
            SEG, ctx.checkpoint('raw.pth', _seg_state(ctx)), '--cfg-options',
            *ctx.data_options(SEG)]))
    add('vis-ckpt-dir', '`visualize_clusters.py --checkpoint` a folder', 'refused',
        ['checkpoint', 'not found'],
        lambda ctx: _visualize(ctx, _gray(ctx), '--checkpoint', ctx.tmp))

    # --- images through the visualisation tool and inferencers
    add('vis-gray', 'grayscale PNG', 'handled', (), lambda ctx: _visualize(ctx, _gray(ctx)))
    add('vis-rgba', 'RGBA PNG', 'handled', (), lambda ctx: _visualize(ctx, ctx.image(
        'rgba.png', np.full((40, 50, 4), 200, np.uint8), 'RGBA')))
    add('vis-16bit', '16-bit grayscale PNG', 'handled', (), lambda ctx: _visualize(
        ctx, ctx.image('g16.png', (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))))
    add('vis-text', 'a text file named .png', 'refused', ['text.png', 'cannot be read'],
        lambda ctx: _visualize(ctx, _write(ctx.path('text.png'), 'not an image')))
    add('vis-empty-dir', 'a folder without images', 'refused', ['no image', 'empty_dir'],
        lambda ctx: _visualize(ctx, _mkdir(ctx.path('empty_dir'))))
    add('vis-missing', 'an image path that does not exist', 'refused', ['nope.png'],
        lambda ctx: _visualize(ctx, ctx.path('nope.png')))
    add('vis-huge', 'a 5000x20 image', 'refused', ['5000', 'max_side'],
        lambda ctx: _visualize(ctx, ctx.image('huge.png', np.zeros((20, 5000, 3), np.uint8))))
    add('det-inferencer-line', "mmdet's DetInferencer, a 1x300 image", 'handled', (),
        lambda ctx: _inferencer(ctx, 'det', ctx.image('line.png', np.zeros((1, 300, 3),
                                                                           np.uint8))))
    add('seg-inferencer-one', "mmseg's MMSegInferencer, a 1x1 image", 'handled', (),
        lambda ctx: _inferencer(ctx, 'seg', ctx.image('one.png', np.zeros((1, 1, 3),
                                                                          np.uint8))))
    add('cls-inferencer-tall', "mmpretrain's ImageClassificationInferencer, a 4000x10 image",
        'handled', (), lambda ctx: _inferencer(ctx, 'cls', ctx.image(
            'tall.png', np.zeros((4000, 10, 3), np.uint8))))
    add('det-inferencer-missing', "DetInferencer on a path that does not exist", 'refused',
        ['gone.png'], lambda ctx: _inferencer(ctx, 'det', ctx.path('gone.png')))

    # --- data sets
    add('cls-line-outside', 'classification list line `../val/x.png 0`', 'refused',
        ['outside the data root'], _cls_outside)
    add('sem-list-outside', 'semantic `ann_file` naming `../../x`', 'refused',
        ['outside the data root'], lambda ctx: _sem_list(ctx, '../../../x'))
    add('sem-list-missing', 'semantic `ann_file` naming a missing image (`--check-data`)',
        'refused', ['missing_one'], lambda ctx: _sem_list(ctx, 'missing_one', '--check-data'))
    add('coco-absolute', 'COCO `file_name` an absolute path elsewhere', 'refused',
        ['outside the data root'], _coco_absolute)
    add('coco-no-images', 'COCO file without "images"', 'refused', ['images'],
        lambda ctx: (_edit_json(_coco(ctx), lambda d: d.pop('images')), ctx.train(DET)))
    add('coco-unknown-cat', 'COCO annotation of an unknown category', 'refused',
        ['category'], lambda ctx: (_edit_json(_coco(ctx), _bad_category), ctx.train(DET)))
    add('check-dataset-missing-root', '`check_dataset.py` on a missing folder', 'refused',
        ['nowhere', 'does not exist'], lambda ctx: _check_dataset(ctx, ctx.path('nowhere')))
    add('folds-missing-root', '`camvid_drive_folds.py` on a folder without img_dir', 'refused',
        ['img_dir'], lambda ctx: _folds(ctx, ctx.tmp))
    add('folds-unknown-drive', '`camvid_drive_folds.py --drives 9999XX`', 'refused',
        ['9999XX', 'drives present'], lambda ctx: _folds(ctx, _camvid_like(ctx), '9999XX'))
    add('pennfudan-no-masks', '`convert_pennfudan.py` without PedMasks/', 'refused',
        ['PedMasks'], lambda ctx: _pennfudan(ctx, masks=False))
    add('pennfudan-mask-size', '`convert_pennfudan.py`, a mask of another size', 'refused',
        ['_mask.png', 'photo'], lambda ctx: _pennfudan(ctx, mask_size=(10, 10)))
    add('pennfudan-out-exists', '`convert_pennfudan.py` into a non-empty folder', 'refused',
        ['--force', 'not empty'], lambda ctx: _pennfudan(ctx, out_exists=True))
    add('shapes-out-is-file', '`make_shapes.py --out` an existing file', 'refused',
        ['a_file2'], lambda ctx: _make_shapes(ctx, _touch(ctx.path('a_file2'))))
    return c


# ------------------------------------------------------------- case bodies
def _touch(path: str) -> str:
    with open(path, 'w') as f:
        f.write('x')
    return path


def _write(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(text)
    return path


def _mkdir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def _gray(ctx: Context) -> str:
    return ctx.image('gray.png', np.full((48, 40), 120, np.uint8))


def _string_weight(ctx: Context) -> str:
    state = _seg_state(ctx)
    state['backbone.patch_embed.projection.weight'] = 'weights'
    return ctx.checkpoint('str.pth', {'state_dict': state})


def _det_checkpoint(ctx: Context) -> str:
    from mmengine.config import Config
    from mmcf.utils.build import build_model_from_cfg
    model = build_model_from_cfg(Config.fromfile(DET))
    return ctx.checkpoint('det.pth', {'state_dict': {
        k: v for k, v in model.state_dict().items() if not k.startswith('backbone.')}})


def _most_fit(ctx: Context) -> str:
    import torch
    state = _seg_state(ctx)
    state['decode_head.center_embed.fc1.weight'] = torch.zeros(3, 3)
    return ctx.checkpoint('most.pth', {'state_dict': state})


def _nan_checkpoint(ctx: Context) -> str:
    state = _seg_state(ctx)
    state['backbone.patch_embed.projection.weight'][0, 0, 0, 0] = float('nan')
    return ctx.checkpoint('nan.pth', {'state_dict': state})


def _inferencer(ctx: Context, task: str, image: str) -> None:
    if task == 'det':
        from mmdet.apis import DetInferencer
        DetInferencer(model=DET, device='cpu')(image, return_vis=False)
    elif task == 'seg':
        from mmseg.apis import MMSegInferencer
        MMSegInferencer(model=SEG, device='cpu')(image, return_vis=False)
    else:
        from mmpretrain.apis import ImageClassificationInferencer
        ImageClassificationInferencer(model=CLS, device='cpu')(image)


def _cls_outside(ctx: Context) -> None:
    meta = osp.join(ctx.data, 'classification', 'meta', 'train.txt')
    with open(meta) as f:
        lines = f.read().splitlines()
    name, label = lines[0].rsplit(' ', 1)
    lines[0] = f'../../../{osp.basename(ctx.tmp)}/x.png {label}'
    _write(meta, '\n'.join(lines) + '\n')
    ctx.train(CLS, iters=1)


def _sem_list(ctx: Context, first: str, *extra: str) -> None:
    """Train the semantic demo on an ``ann_file`` listing ``first`` and the
    training images."""
    names = sorted(os.listdir(osp.join(ctx.data, 'semantic', 'img_dir', 'train')))
    lst = _write(ctx.path('sem.txt'), '\n'.join([first] + [n[:-4] for n in names]) + '\n')
    ctx.train(SEG, *extra, options=[f'train_dataloader.dataset.ann_file={lst}'])


def _coco_absolute(ctx: Context) -> None:
    outside = ctx.image('abs.png', np.zeros((64, 64, 3), np.uint8))
    _edit_json(_coco(ctx), lambda d: d['images'][0].update(file_name=outside))
    ctx.train(DET)


def _bad_category(data: dict) -> None:
    data['annotations'][0]['category_id'] = 99


def _check_dataset(ctx: Context, root: str) -> None:
    import io
    err, old = io.StringIO(), sys.stderr
    sys.stderr = err
    try:
        code = ctx.tool('dataset/check_dataset').main([root])
    finally:
        sys.stderr = old
    if code:
        raise SystemExit(f'check_dataset.py exited {code}: {err.getvalue().strip()}')


def _folds(ctx: Context, root: str, drive: Optional[str] = None) -> None:
    mod = ctx.tool('dataset/camvid_drive_folds')
    mod.write_folds(root, ctx.path('folds'), [drive] if drive else mod.DRIVES)


def _camvid_like(ctx: Context) -> str:
    root = ctx.path('camvid')
    for d in ('img_dir/train', 'ann_dir/train', 'img_dir/val', 'ann_dir/val'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    for d in ('img_dir', 'ann_dir'):
        ctx.image(f'camvid/{d}/train/0001TP_000001.png', np.zeros((4, 4, 3), np.uint8))
    return root


def _pennfudan(ctx: Context, masks: bool = True, mask_size=None, out_exists: bool = False):
    src = ctx.path('pf_src')
    os.makedirs(osp.join(src, 'PNGImages'), exist_ok=True)
    ctx.image('pf_src/PNGImages/FudanPed00001.png', np.zeros((30, 20, 3), np.uint8))
    if masks:
        os.makedirs(osp.join(src, 'PedMasks'), exist_ok=True)
        h, w = mask_size or (30, 20)
        m = np.zeros((h, w), np.uint8)
        m[2:8, 2:8] = 1
        ctx.image('pf_src/PedMasks/FudanPed00001_mask.png', m)
    out = ctx.path('pf_out')
    if out_exists:
        _touch(_mkdir(out) + '/keep.txt')
    mod = ctx.tool('dataset/convert_pennfudan')
    mod.convert_pennfudan(src, out, split_sizes=(1, 0), verbose=False)


def _make_shapes(ctx: Context, out: str) -> None:
    mod = ctx.tool('dataset/make_shapes')
    mod.make_shapes(out, size=32, seed=0, num_train=2, num_val=1, cls_per_class_train=1,
                    cls_per_class_val=1)


# ------------------------------------------------------------------ running
CASES = _cases()


class Outcome(NamedTuple):
    result: str  # 'handled' | 'refused' | 'silent' | 'unclear'
    detail: str


def run_case(case: Case, data: str, tmp: str) -> Outcome:
    """Run one case on a fresh copy of ``data`` under ``tmp``."""
    copy = osp.join(tmp, 'data')
    shutil.copytree(data, copy)
    ctx = Context(copy, tmp)
    try:
        with _default_scope_kept():
            case.run(ctx)
    except BaseException as e:  # noqa: BLE001 - every outcome is recorded
        if isinstance(e, KeyboardInterrupt):
            raise
        text = f'{type(e).__name__}: {e}'
        first = ' '.join(str(e).split())[:160]
        if isinstance(e, SystemExit) and e.code == 2:  # argparse: its message on stderr
            usage = _last_usage_error().strip().splitlines()
            text += ' ' + ' '.join(usage)
            first = f'usage error: {usage[-1][:150]}' if usage else first
        if case.expected == 'refused' and all(w.lower() in text.lower() for w in case.words):
            return Outcome('refused', f'{type(e).__name__}: {first}')
        return Outcome('unclear', f'{type(e).__name__}: {first}')
    if case.expected == 'handled':
        return Outcome('handled', 'ran to the end')
    return Outcome('silent', 'ran to the end without a word')


_STDERR: List[str] = []


def _last_usage_error() -> str:
    return _STDERR[-1] if _STDERR else ''


@contextlib.contextmanager
def _default_scope_kept():
    """Keep stderr of argparse errors and undo the registry scope a run sets."""
    import io
    from mmengine.registry import DefaultScope
    before = dict(DefaultScope._instance_dict)
    buffer, old = io.StringIO(), sys.stderr
    sys.stderr = buffer
    try:
        yield
    finally:
        sys.stderr = old
        _STDERR.append(buffer.getvalue())
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(before)


def make_data(folder: str) -> str:
    spec = importlib.util.spec_from_file_location(
        'probe_make_shapes', osp.join(ROOT, 'tools', 'dataset', 'make_shapes.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return str(mod.make_shapes(osp.join(folder, 'shapes'), size=64, seed=0, num_train=16,
                               num_val=8, cls_per_class_train=12, cls_per_class_val=6))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--cases', nargs='+', default=None, help='case ids (default: all)')
    p.add_argument('--markdown', action='store_true', help='print the table')
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    import mmcf  # noqa: F401
    import torch
    torch.set_num_threads(1)
    chosen = [c for c in CASES if not args.cases or c.id in args.cases]
    bad = 0
    rows = []
    with tempfile.TemporaryDirectory() as base:
        data = make_data(base)
        for case in chosen:
            tmp = tempfile.mkdtemp(dir=base)
            out = run_case(case, data, tmp)
            bad += out.result in ('silent', 'unclear')
            rows.append((case, out))
            print(f'{out.result:8s} {case.id}: {out.detail}', flush=True)
    if args.markdown:
        print('\n| case | bad input or fault | expected | result |\n|---|---|---|---|')
        for case, out in rows:
            expected = 'handled' if case.expected == 'handled' else \
                'refused naming ' + ', '.join(f'`{w}`' for w in case.words)
            print(f'| {case.id} | {case.what} | {expected} | {out.result}: '
                  f'{out.detail.replace("|", "/")} |')
    print(f'{len(rows)} cases, {bad} silent or unclear')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
