"""Nothing silent, nothing unclear: a model that disagrees with its data, a
resume that would train nothing or load another optimizer, weights that fit
nowhere (every way they are loaded), a --cfg-options value of the wrong
type, a data path outside its data root, images of any shape through every
task's test pipeline, and a full disk while saving. Each case is built
here and must end in the named error or the correct result."""
import errno
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from demo_configs import DEMO_BY_NAME, DEMOS
from helpers import ROOT, load_tool

import mmcf  # noqa: F401
from mmcf.datasets.data_check import DatasetError
from mmcf.engine import CheckpointError
from mmcf.engine.preflight import PreflightError, check_class_counts

train_tool = load_tool('train')
test_tool = load_tool('test')
visualize_tool = load_tool('visualize_clusters')
CLS, SEG, DET, PAN = (DEMO_BY_NAME[n] for n in ('classification', 'segmentation', 'detection',
                                                 'panoptic'))


def _args(demo, data, work, *extra, options=()):
    return [demo.config, '--work-dir', str(work), *extra, '--cfg-options',
            *demo.data_options(data), *demo.schedule(3, 3),
            f'train_dataloader.batch_size={demo.batch_size}', *options]


def _no_checkpoints(work):
    found = [f for _, _, fs in os.walk(work) for f in fs if f.endswith('.pth')]
    assert not found, found


# ------------------------------------------------------ classes against data
@pytest.mark.parametrize('demo,key,value,classes', [
    (SEG, 'model.decode_head.num_classes', 10, 7),
    (CLS, 'model.head.num_classes', 3, 4),
    (DET, 'model.bbox_head.num_classes', 6, 4),
    (PAN, 'model.bbox_head.num_things_classes', 5, 7)])
def test_head_and_data_class_counts_must_agree(shapes_root, tmp_path, demo, key, value, classes):
    with pytest.raises(PreflightError) as e:
        train_tool.main(_args(demo, shapes_root, tmp_path / 'w', options=[f'{key}={value}']))
    text = str(e.value)
    assert f'{key}' in text and f'has {classes} classes' in text
    assert 'metainfo' in text or 'classes' in text
    _no_checkpoints(tmp_path)


def test_class_counts_of_test_runs(shapes_root, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(SEG.config)
    cfg.merge_from_dict({'model.decode_head.num_classes': 9})
    with pytest.raises(PreflightError, match=r'test_dataloader.dataset has 7 classes'):
        check_class_counts(cfg, ('test_dataloader', ))


# ------------------------------------------------------------------- resume
@pytest.fixture(scope='module')
def seg_run(shapes_root, tmp_path_factory):
    """Three iterations of the segmentation demo, a checkpoint at 3."""
    work = tmp_path_factory.mktemp('seg_run')
    train_tool.main(_args(SEG, shapes_root, work))
    return work / 'iter_3.pth'


def test_resume_past_the_end_of_the_schedule_is_refused(shapes_root, tmp_path, seg_run):
    with pytest.raises(PreflightError, match=r'at iter 3, and train_cfg.max_iters is 2: '
                       'nothing would be trained'):
        train_tool.main(_args(SEG, shapes_root, tmp_path / 'w', '--resume', str(seg_run),
                              options=['train_cfg.max_iters=2']))
    with pytest.raises(PreflightError, match='max_iters is 3'):
        train_tool.main(_args(SEG, shapes_root, tmp_path / 'w', '--resume', str(seg_run)))
    _no_checkpoints(tmp_path)


def test_resume_with_another_optimizer_is_refused(shapes_root, tmp_path, seg_run):
    sgd = tmp_path / 'sgd_cfg.py'
    sgd.write_text(f"_base_ = {SEG.config!r}\n"
                   "optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.01, "
                   "momentum=0.9))\n")
    args = _args(SEG, shapes_root, tmp_path / 'w', '--resume', str(seg_run),
                 options=['train_cfg.max_iters=6'])
    with pytest.raises(PreflightError, match=r"optimizer state is of AdamW.*optimizer.type is "
                       r"SGD \(which needs \['dampening', 'momentum', 'nesterov'\]\)"):
        train_tool.main([str(sgd)] + args[1:])
    _no_checkpoints(tmp_path)


# ---------------------------------------------------- weights, every way in
@pytest.fixture(scope='module')
def foreign(tmp_path_factory):
    """A `tiny` backbone's weights, a file holding pickled code, an empty file."""
    from mmcf.models import ClusterFormer
    folder = tmp_path_factory.mktemp('weights')
    tiny = folder / 'tiny_backbone.pth'
    torch.save({'state_dict': ClusterFormer('tiny').state_dict()}, tiny)
    evil = folder / 'code.pth'
    torch.save({'state_dict': {}, 'hook': _Payload()}, evil)
    empty = folder / 'empty.pth'
    empty.write_bytes(b'')
    return dict(tiny=str(tiny), evil=str(evil), empty=str(empty))


class _Payload:
    def __reduce__(self):
        return (os.system, ('touch /tmp/mmcf_preflight_pwned', ))


def test_backbone_init_cfg_from_another_size_is_refused(shapes_root, tmp_path, foreign):
    opts = ['model.backbone.init_cfg.type=Pretrained',
            f"model.backbone.init_cfg.checkpoint={foreign['tiny']}"]
    with pytest.raises(CheckpointError, match=rf"{foreign['tiny']}: only 0 of the \d+ weights of "
                       'ClusterFormer are in it'):
        train_tool.main(_args(SEG, shapes_root, tmp_path / 'w', options=opts))
    _no_checkpoints(tmp_path)


@pytest.mark.parametrize('which,reason', [('evil', 'is refused: it holds code'),
                                          ('empty', r'is empty \(0 bytes\)')])
def test_bad_files_are_refused_the_same_way_everywhere(shapes_root, tmp_path, foreign, which,
                                                       reason):
    path = foreign[which]
    image = tmp_path / 'img.png'
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    ways = {
        'init_cfg': lambda: train_tool.main(_args(SEG, shapes_root, tmp_path / 'w', options=[
            'model.backbone.init_cfg.type=Pretrained',
            f'model.backbone.init_cfg.checkpoint={path}'])),
        'load_from': lambda: train_tool.main(_args(SEG, shapes_root, tmp_path / 'w',
                                                   options=[f'load_from={path}'])),
        'test.py': lambda: test_tool.main([SEG.config, path, '--cfg-options',
                                           *SEG.data_options(shapes_root)]),
        'visualize_clusters': lambda: visualize_tool.main([
            SEG.config, str(image), '--checkpoint', path, '--out-dir', str(tmp_path / 'v')]),
    }
    for way, run in ways.items():
        with pytest.raises(CheckpointError, match=reason) as e:
            run()
        assert path in str(e.value), way
        assert 'weights_only=False' not in str(e.value), way
    assert not osp.exists('/tmp/mmcf_preflight_pwned')
    _no_checkpoints(tmp_path)


def test_stock_inferencer_uses_the_same_rules(tmp_path, foreign):
    from mmdet.apis import DetInferencer
    with pytest.raises(CheckpointError, match=rf"{foreign['evil']} is refused"):
        DetInferencer(model=DET.config, weights=foreign['evil'], device='cpu')
    from mmcf.models import ClusterFormer
    other = tmp_path / 'backbone_only.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               ClusterFormer('test').state_dict().items()}}, other)
    # the backbone alone is under half of the detector's weights
    with pytest.raises(CheckpointError, match=rf'{other}: only \d+ of the \d+ weights of '
                       'ClusterFormerDetector'):
        DetInferencer(model=DET.config, weights=str(other), device='cpu')


# ------------------------------------------------------- typed cfg-options
def test_a_dict_value_in_cfg_options_is_refused_with_the_way_to_write_it(capsys):
    with pytest.raises(SystemExit) as e:
        train_tool.parse_args([SEG.config, '--cfg-options',
                               "model.backbone.init_cfg=dict(type='Pretrained',checkpoint='x')"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--cfg-options \"model.backbone.init_cfg=dict(" in err or 'model.backbone.init_cfg' in err
    assert 'set its keys one by one, model.backbone.init_cfg.type=' in err



@pytest.mark.parametrize('option,message', [
    ('model.backbone.drop_path_rate=high', r"holds 0.0 there\) takes a number.*the string "
                                           r"'high'"),
    ('train_cfg.max_iters=ten', r"max_iters=ten: .* takes a number.*'ten'"),
    ('model.backbone.out_centers=maybe', r"takes a bool \(True or False\).*'maybe'"),
    ('train_cfg.max_iters=1.5', r"IterBasedTrainLoop's max_iters takes an int, got float 1.5"),
    ('model.backbone.frozen_stages=all', r"ClusterFormer's frozen_stages takes an int.*'all'")])
def test_cfg_options_of_the_wrong_type_name_key_and_type(shapes_root, tmp_path, option,
                                                        message):
    with pytest.raises(TypeError, match=message):
        train_tool.main(_args(SEG, shapes_root, tmp_path / 'w', options=[option]))
    assert not (tmp_path / 'w').exists()


# --------------------------------------------------------- data root limits
def test_coco_file_name_outside_the_data_root(shapes_root, tmp_path):
    data = tmp_path / 'shapes'
    shutil.copytree(shapes_root, data)
    ann = data / 'coco' / 'annotations' / 'instances_train.json'
    coco = json.loads(ann.read_text())
    outside = tmp_path / 'elsewhere.png'
    shutil.copy(data / 'coco' / 'val' / coco['images'][0]['file_name'], outside)
    coco['images'][0]['file_name'] = osp.relpath(outside, data / 'coco' / 'train')
    ann.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r'lies outside the data root.*'
                       'allow_outside_data_root=True'):
        train_tool.main(_args(DET, data, tmp_path / 'w'))
    check_dataset = load_tool(osp.join('dataset', 'check_dataset'))
    assert check_dataset.main([str(data), '--format', 'coco']) == 1
    assert check_dataset.main(['--config', DET.config, '--no-images', '--cfg-options',
                               *DET.data_options(data)]) == 1
    # the config may allow it
    train_tool.main(_args(DET, data, tmp_path / 'w2', options=['allow_outside_data_root=True']))
    assert (tmp_path / 'w2' / 'iter_3.pth').exists()


# ------------------------------------------------- images of any shape
@pytest.mark.parametrize('demo', DEMOS, ids=[d.name for d in DEMOS])
def test_thin_and_tiny_images_reach_the_model(tmp_path, demo):
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmcf.utils.build import build_image_pipeline, build_model_from_cfg
    cfg = Config.fromfile(demo.config)
    model = build_model_from_cfg(cfg)
    pipeline = build_image_pipeline(cfg)
    for h, w in ((10, 4000), (4000, 10), (1, 1), (1, 300)):
        path = tmp_path / f'{h}x{w}.png'
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
        with torch.no_grad():
            out = model.test_step(pseudo_collate([pipeline(dict(img_path=str(path)))]))
        assert len(out) == 1, (h, w)


def test_visualize_clusters_on_a_thin_image(tmp_path):
    path = tmp_path / 'wide.png'
    Image.fromarray(np.full((10, 4000, 3), 90, np.uint8)).save(path)
    visualize_tool.main([DET.config, str(path), '--out-dir', str(tmp_path / 'v')])
    assert any(f.endswith('.png') for f in os.listdir(tmp_path / 'v'))


# ------------------------------------------------------------- full disk
def test_a_full_disk_while_saving_names_the_file(tmp_path, monkeypatch):
    import mmcf.engine.atomic_save as atomic_save
    path = tmp_path / 'iter_10.pth'
    path.write_bytes(b'the previous checkpoint')
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_save, 'open', lambda p, m: FullDisk(real_open(p, m)),
                        raising=False)
    with pytest.raises(OSError, match=rf'No space left on device while saving {path} '
                       r'\(the file there is unchanged\)') as e:
        atomic_save.atomic_write(b'new weights', str(path))
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert path.read_bytes() == b'the previous checkpoint'
    assert os.listdir(tmp_path) == ['iter_10.pth']
