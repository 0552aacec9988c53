"""Bad input through the public entry points: every case is handled or
refused with an error naming the file, key or value at fault, and none
leaves a checkpoint or output behind.

Existing bad-input tests elsewhere (not repeated here): label values above
num_classes and label/image size mismatch (test_segmentation.py), tampered
and unlisted-class checkpoints and mismatched keys with load_checkpoint
(test_checkpoint.py), make_shapes arguments and output folder
(test_shapes_dataset.py).
"""
import json
import logging
import os
import os.path as osp
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from demo_configs import DEMOS
from helpers import ROOT, load_tool, logged, python

import mmcf  # noqa: F401
from mmcf.engine import CheckpointError
from mmcf.datasets.config_check import check_data_root
from mmcf.datasets.data_check import (DatasetError, check_coco_instances, check_coco_panoptic,
                                      check_semantic)

CLS, SEG = DEMOS[0], DEMOS[1]


train_tool = load_tool('train')
test_tool = load_tool('test')
check_dataset_tool = load_tool(osp.join('dataset', 'check_dataset'))


@pytest.fixture
def data(shapes_root, tmp_path):
    """A private copy of the shapes fixture that a test may damage."""
    root = tmp_path / 'shapes'
    shutil.copytree(shapes_root, root)
    return root


def _cls_args(data, work, *extra, options=()):
    return [CLS.config, '--work-dir', str(work), *extra, '--cfg-options',
            *CLS.data_options(data), 'train_cfg.max_epochs=1', *options]


def _no_outputs(work):
    found = [osp.join(r, f) for r, _, fs in os.walk(work) for f in fs
             if f.endswith(('.pth', '.pkl')) or '.mmcf-tmp-' in f]
    assert not found, f'left behind: {found}'


# -------------------------------------------------------------- configs, CLI
def test_config_file_missing(tmp_path):
    path = str(tmp_path / 'no_such_config.py')
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        train_tool.main([path])


def test_config_with_syntax_error(tmp_path):
    cfg = tmp_path / 'broken_cfg.py'
    cfg.write_text("model = dict(type='ImageClassifier'\n")
    with pytest.raises(SyntaxError, match='broken_cfg.py'):
        train_tool.main([str(cfg), '--work-dir', str(tmp_path / 'w')])


def test_cfg_options_misspelt_top_level_key(data, tmp_path):
    with pytest.raises(KeyError, match=r"train_dataloder.*did you mean \['train_dataloader'"):
        train_tool.main(_cls_args(data, tmp_path / 'w', options=['train_dataloder.batch_size=4']))
    _no_outputs(tmp_path)


def test_unknown_key_in_a_module_config(data, tmp_path):
    # refused when the config is read, before anything is built
    with pytest.raises(KeyError, match=r"model\.backbone\.archh: ClusterFormer \(at "
                       r"model\.backbone\) takes no argument 'archh'; did you mean \['arch'\]"):
        train_tool.main(_cls_args(data, tmp_path / 'w', options=['model.backbone.archh=test']))
    _no_outputs(tmp_path)
    assert not (tmp_path / 'w').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 is allowed with CUDA')
def test_fp16_amp_on_cpu_refused_with_bf16_hint(data, tmp_path):
    with pytest.raises(RuntimeError, match='--amp.*CUDA.*--amp-dtype bfloat16'):
        train_tool.main(_cls_args(data, tmp_path / 'w', '--amp'))


def test_amp_dtype_not_a_choice(capsys):
    with pytest.raises(SystemExit) as e:
        train_tool.parse_args([CLS.config, '--amp-dtype', 'float8'])
    assert e.value.code == 2
    assert "invalid choice: 'float8'" in capsys.readouterr().err


def test_auto_scale_lr_without_base_batch_size(tmp_path):
    cfg = tmp_path / 'no_auto_scale.py'
    cfg.write_text(f"_base_ = {SEG.config!r}\n")
    with pytest.raises(KeyError, match='auto_scale_lr.base_batch_size'):
        train_tool.main([str(cfg), '--auto-scale-lr', '--work-dir', str(tmp_path / 'w')])


def test_data_root_that_does_not_exist(tmp_path):
    missing = tmp_path / 'nowhere'
    # the annotation check before training names the missing file
    with pytest.raises(DatasetError, match=str(missing) + r'.*train\.txt does not exist'):
        train_tool.main(_cls_args(missing, tmp_path / 'w'))
    with pytest.raises(DatasetError, match=str(missing)):
        check_data_root(str(missing))


def test_make_shapes_cli_non_integer_size(tmp_path):
    out = tmp_path / 'x'
    res = subprocess.run([python(), osp.join(ROOT, 'tools', 'dataset', 'make_shapes.py'),
                          '--out', str(out), '--size', '64px'],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert '--size' in res.stderr and "'64px'" in res.stderr
    assert not out.exists()


# -------------------------------------------------------------- checkpoints
def _checkpoint_of_other_arch(path):
    from mmcf.models import ClusterFormer
    other = ClusterFormer(dict(embed_dims=16, depths=[1, 1, 1, 1]),
                          clustering_cfg=dict(head_dim=16), num_centers=4)
    sd = {f'backbone.{k}': v for k, v in other.state_dict().items()}
    torch.save({'meta': {'epoch': 1, 'iter': 3}, 'state_dict': sd, 'optimizer': {},
                'param_schedulers': []}, path)


def test_resume_from_missing_checkpoint(data, tmp_path):
    path = str(tmp_path / 'gone.pth')
    with pytest.raises(FileNotFoundError, match='gone.pth'):
        train_tool.main(_cls_args(data, tmp_path / 'w', '--resume', path))


def test_resume_from_truncated_checkpoint(data, tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save({'meta': {}, 'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r'cut\.pth cannot be read \(truncated or corrupt'):
        train_tool.main(_cls_args(data, tmp_path / 'w', '--resume', str(path)))
    _no_outputs(tmp_path / 'w')


def test_resume_from_checkpoint_of_another_architecture(data, tmp_path):
    path = tmp_path / 'other_arch.pth'
    _checkpoint_of_other_arch(path)
    with pytest.raises(CheckpointError,
                       match=r'other_arch\.pth does not match the model ImageClassifier.*'
                       r'shape mismatches'):
        # (max_epochs past the checkpoint's epoch 1, else it would be refused as
        # training nothing before the model is built)
        train_tool.main(_cls_args(data, tmp_path / 'w', '--resume', str(path),
                                  options=['train_cfg.max_epochs=2']))
    _no_outputs(tmp_path / 'w')


def test_test_py_refuses_checkpoint_of_another_architecture(data, tmp_path):
    path = tmp_path / 'other_arch.pth'
    _checkpoint_of_other_arch(path)
    out = tmp_path / 'preds.pkl'
    with pytest.raises(CheckpointError, match=r'other_arch\.pth does not match the model'):
        test_tool.main([CLS.config, str(path), '--out', str(out), '--work-dir',
                        str(tmp_path / 'w'), '--cfg-options', *CLS.data_options(data)])
    assert not out.exists()


def test_test_py_refuses_pickled_object_in_checkpoint(data, tmp_path):
    path = tmp_path / 'with_object.pth'
    torch.save({'state_dict': {}, 'meta': {'fmt': logging.Formatter()}}, path)
    out = tmp_path / 'preds.pkl'
    with pytest.raises(CheckpointError, match=r'with_object\.pth is refused.*Formatter'):
        test_tool.main([CLS.config, str(path), '--out', str(out), '--work-dir',
                        str(tmp_path / 'w'), '--cfg-options', *CLS.data_options(data)])
    assert not out.exists()
    assert not (tmp_path / 'w').exists()


def test_test_py_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('these are my notes, not a checkpoint\n')
    with pytest.raises(CheckpointError, match=r'notes\.pth cannot be read'):
        test_tool.main([CLS.config, str(path), '--work-dir', str(tmp_path / 'w')])


def test_test_py_out_must_be_pickle(tmp_path):
    path = tmp_path / 'any.pth'
    torch.save({'state_dict': {}}, path)
    with pytest.raises(ValueError, match=r'--out must be a \.pkl file, got .*preds\.json'):
        test_tool.main([CLS.config, str(path), '--out', str(tmp_path / 'preds.json')])
    assert not (tmp_path / 'preds.json').exists()


# -------------------------------------------------------- images, annotations
def _check_cls(data, tmp_path):
    """tools/train.py --check-data on the classification demo."""
    train_tool.main(_cls_args(data, tmp_path / 'w', '--check-data'))


def test_corrupt_image_file(data, tmp_path):
    img = data / 'classification' / 'train' / 'circle' / '0001.png'
    img.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00garbage' * 20)
    with pytest.raises(DatasetError, match=r'circle/0001\.png cannot be decoded'):
        _check_cls(data, tmp_path)
    _no_outputs(tmp_path)
    # and without --check-data the stock loader names the file too
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS
    init_default_scope('mmpretrain')
    with pytest.raises(AssertionError, match=r'failed to load image: .*circle/0001\.png'):
        TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=str(img)))


def test_truncated_jpeg_is_refused(tmp_path):
    img = tmp_path / 'img_dir'
    ann = tmp_path / 'ann_dir'
    img.mkdir()
    ann.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img / 'a.jpg', quality=90)
    jpg = (img / 'a.jpg').read_bytes()
    (img / 'a.jpg').write_bytes(jpg[:len(jpg) // 2])
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(ann / 'a.png')
    with pytest.raises(DatasetError, match=r'a\.jpg cannot be decoded'):
        check_semantic(str(img), str(ann), 7, img_suffix='.jpg')


def test_zero_byte_label_map(data):
    sem = data / 'semantic'
    (sem / 'ann_dir' / 'train' / '0003.png').write_bytes(b'')
    with pytest.raises(DatasetError, match=r'label map .*0003\.png is empty'):
        check_data_root(str(data), ['semantic'])


def test_classification_label_out_of_range(data, tmp_path):
    ann = data / 'classification' / 'meta' / 'train.txt'
    lines = ann.read_text().splitlines()
    lines[4] = lines[4].rsplit(' ', 1)[0] + ' 7'
    ann.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DatasetError, match=r'train\.txt:5: label 7 is outside 0\.\.3'):
        _check_cls(data, tmp_path)


def test_classification_malformed_line(data, tmp_path):
    ann = data / 'classification' / 'meta' / 'train.txt'
    ann.write_text(ann.read_text() + 'circle/0001.png first\n')
    with pytest.raises(DatasetError, match=r"train\.txt:\d+: label 'first' is not an integer"):
        _check_cls(data, tmp_path)


def test_classification_image_path_does_not_exist(data, tmp_path):
    ann = data / 'classification' / 'meta' / 'train.txt'
    ann.write_text(ann.read_text() + 'circle/9999.png 0\n')
    with pytest.raises(DatasetError, match=r'circle/9999\.png does not exist'):
        _check_cls(data, tmp_path)


def test_empty_annotation_file(data, tmp_path):
    (data / 'classification' / 'meta' / 'train.txt').write_text('')
    with pytest.raises(DatasetError, match=r'train\.txt lists no samples'):
        _check_cls(data, tmp_path)


def test_label_map_with_three_channels(data):
    seg = data / 'semantic' / 'ann_dir' / 'val' / '0002.png'
    arr = np.asarray(Image.open(seg))
    Image.fromarray(np.stack([arr] * 3, -1)).save(seg)
    with pytest.raises(DatasetError, match=r'0002\.png has 3 channels'):
        check_data_root(str(data), ['semantic'], splits=['val'])


def test_label_map_missing_and_wrong_size(data):
    sem = data / 'semantic' / 'ann_dir' / 'train'
    (sem / '0001.png').unlink()
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(sem / '0002.png')
    with pytest.raises(DatasetError) as e:
        check_data_root(str(data), ['semantic'], splits=['train'])
    assert '0001.png does not exist' in str(e.value)
    assert '0002.png is 32x64' in str(e.value)
    assert str(e.value).startswith('2 problem(s)')


def _coco(data, kind='instances', split='train'):
    coco = data / 'coco'
    return coco / 'annotations' / f'{kind}_{split}.json', coco


def test_truncated_coco_json(data):
    ann, coco = _coco(data)
    ann.write_text(ann.read_text()[:200])
    with pytest.raises(DatasetError, match=r'instances_train\.json is not valid JSON'):
        check_coco_instances(str(ann), str(coco / 'train'))


def _edit_json(path, fn):
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def test_coco_category_id_not_in_categories(data):
    ann, coco = _coco(data)
    _edit_json(ann, lambda d: d['annotations'][2].update(category_id=42))
    with pytest.raises(DatasetError, match=r'annotation id 3 has category_id 42, not in '
                       r'"categories" \(ids \[1, 2, 3, 4\]\)'):
        check_coco_instances(str(ann), str(coco / 'train'))


def test_coco_annotation_of_unknown_image_and_bad_box(data):
    ann, coco = _coco(data)

    def damage(d):
        d['annotations'][0]['image_id'] = 999
        d['annotations'][1]['bbox'] = [50.0, 50.0, 30.0, 30.0]
    _edit_json(ann, damage)
    with pytest.raises(DatasetError) as e:
        check_coco_instances(str(ann), str(coco / 'train'))
    assert 'annotation id 1 has image_id 999, not in "images"' in str(e.value)
    assert 'annotation id 2 has bbox [50.0, 50.0, 30.0, 30.0], outside its 64x64' \
        in str(e.value)


def test_coco_image_file_missing(data):
    ann, coco = _coco(data)
    (coco / 'train' / '0004.png').unlink()
    with pytest.raises(DatasetError, match=r'train/0004\.png does not exist'):
        check_coco_instances(str(ann), str(coco / 'train'))


def test_panoptic_segment_id_missing_from_png(data):
    ann, coco = _coco(data, 'panoptic')
    _edit_json(ann, lambda d: d['annotations'][0]['segments_info'].append(
        dict(id=77, category_id=1, iscrowd=0, bbox=[0, 0, 1, 1], area=1)))
    with pytest.raises(DatasetError, match=r'segment id\(s\) \[77\] are listed in '
                       r'segments_info but missing from the PNG'):
        check_coco_panoptic(str(ann), str(coco / 'train'), str(coco / 'panoptic_train'))


def test_panoptic_png_holds_unlisted_segment_and_unknown_category(data):
    ann, coco = _coco(data, 'panoptic')

    def damage(d):
        segs = d['annotations'][1]['segments_info']
        segs.pop()  # its pixels stay in the PNG
        segs[0]['category_id'] = 99
    _edit_json(ann, damage)
    with pytest.raises(DatasetError) as e:
        check_coco_panoptic(str(ann), str(coco / 'train'), str(coco / 'panoptic_train'))
    assert 'that segments_info does not list' in str(e.value)
    assert 'has category_id 99, not in "categories"' in str(e.value)


def test_check_dataset_cli(data, shapes_root, capsys):
    assert check_dataset_tool.main([str(shapes_root)]) == 0
    out = capsys.readouterr().out
    assert 'panoptic/val: ok' in out and 'semantic/train: ok' in out
    (data / 'coco' / 'panoptic_val' / '0001.png').unlink()
    assert check_dataset_tool.main([str(data), '--format', 'panoptic']) == 1
    assert 'panoptic_val/0001.png does not exist' in capsys.readouterr().err


# ------------------------------------------------- bad values: nothing silent
@pytest.mark.parametrize('kwargs,match', [
    (dict(num_centers=0), 'num_centers must be a positive int'),
    (dict(clustering_cfg=dict(head_dim=0)), 'clustering_cfg.head_dim must be a positive int'),
    (dict(clustering_cfg=dict(num_iters=-1)),
     'clustering_cfg.num_iters must be a positive int, got -1'),
    (dict(drop_path_rate=1.5), r'drop_path_rate must be in \[0, 1\), got 1.5'),
    (dict(drop_path_rate=-0.1), r'drop_path_rate must be in \[0, 1\)')])
def test_backbone_refuses_zero_counts_and_bad_drop_path(kwargs, match):
    from mmcf.models import ClusterFormer
    with pytest.raises(ValueError, match=match):
        ClusterFormer('test', **kwargs)
    # None still means the arch default
    assert ClusterFormer('test', num_centers=None).num_centers == 16


def test_hook_argument_typo_refused_before_training(data, tmp_path):
    with pytest.raises(KeyError, match=r"default_hooks\.checkpoint\.max_keep_ckpt: "
                       r"CheckpointHook .* takes no argument 'max_keep_ckpt'; did you mean "
                       r"\['max_keep_ckpts'\]"):
        train_tool.main(_cls_args(data, tmp_path / 'w',
                                  options=['default_hooks.checkpoint.max_keep_ckpt=1']))
    assert not (tmp_path / 'w').exists()


def test_cfg_options_arguments_checked_all_the_way_down():
    from mmcf.utils.config import load_config
    for key, cls in [('train_cfg.max_epoch', 'EpochBasedTrainLoop'),
                     ('optim_wrapper.optimizer.lrr', 'AdamW'),
                     ('train_dataloader.dataset.pipeline.2.probb', 'RandomFlip'),
                     ('model.head.loss.loss_weigth', 'CrossEntropyLoss')]:
        with pytest.raises(KeyError, match=rf'{key}: {cls} .*takes no argument'):
            load_config(CLS.config, {key: 1})
    # right keys, including **kwargs passed on to a base class, are accepted
    load_config(SEG.config, {'train_dataloader.dataset.data_root': 'x',
                             'default_hooks.checkpoint.max_keep_ckpts': 1,
                             'model.decode_head.num_classes': 7})
    # the optimizer wrapper constructor's keys, as mmdet users pass them
    cfg = load_config(SEG.config, {
        'optim_wrapper.paramwise_cfg.custom_keys.decode_head.lr_mult': 0.5})
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.decode_head.lr_mult == 0.5
    with pytest.raises(KeyError, match=r'optim_wrapper\.paramwise_cfgg\.x: OptimWrapper .*'
                       r"takes no argument 'paramwise_cfgg'"):
        load_config(SEG.config, {'optim_wrapper.paramwise_cfgg.x': 1})


def test_checkpoint_of_another_arch_as_load_from(data, tmp_path):
    path = tmp_path / 'other_arch.pth'
    _checkpoint_of_other_arch(path)
    with pytest.raises(CheckpointError, match=r'other_arch\.pth does not match the model '
                       r'ImageClassifier.*only \d+ of its \d+ weights would load'):
        train_tool.main(_cls_args(data, tmp_path / 'w', options=[f'load_from={path}']))
    _no_outputs(tmp_path / 'w')


def test_test_py_refuses_nan_weights(data, tmp_path):
    path = tmp_path / 'diverged.pth'
    torch.save({'state_dict': {'backbone.w': torch.tensor([1.0, float('nan')])}}, path)
    out = tmp_path / 'preds.pkl'
    with pytest.raises(CheckpointError, match=r'diverged\.pth holds NaN or infinite values'):
        test_tool.main([CLS.config, str(path), '--out', str(out), '--work-dir',
                        str(tmp_path / 'w')])
    assert not out.exists()


def _png16(path, arr):
    Image.fromarray(arr.astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith('I')


def test_16_bit_label_map_is_not_wrapped(tmp_path):
    from mmseg.registry import TRANSFORMS
    label = np.zeros((8, 8), np.int64)
    label[2:4, 2:4] = 259  # mmseg's uint8 cast makes it class 3
    label[5, 5] = 3
    path = tmp_path / 'label16.png'
    _png16(path, label)
    results = dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[])
    plain = TRANSFORMS.build(dict(type='LoadSegAnnotations'))(dict(results, seg_fields=[]))
    assert plain['gt_seg_map'].shape == (8, 8)
    np.testing.assert_array_equal(plain['gt_seg_map'], label)
    with pytest.raises(ValueError, match=r'label16\.png holds value\(s\) \[259\] outside 0\.\.6'):
        TRANSFORMS.build(dict(type='LoadSegAnnotations', num_classes=7))(results)
    # and --check-data reads it unwrapped too
    img_dir, ann_dir = tmp_path / 'img', tmp_path / 'ann'
    img_dir.mkdir()
    ann_dir.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img_dir / 'a.png')
    _png16(ann_dir / 'a.png', label)
    with pytest.raises(DatasetError, match=r'a\.png holds label value\(s\) \[259\]'):
        check_semantic(str(img_dir), str(ann_dir), 7)


def test_segmentation_demo_refuses_16_bit_out_of_range_label(data):
    """Through the demo config's pipeline (LoadSegAnnotations, num_classes)."""
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    seg = data / 'semantic' / 'ann_dir' / 'train' / '0001.png'
    arr = np.asarray(Image.open(seg)).astype(np.int64)
    arr[0, 0] = 259
    _png16(seg, arr)
    init_default_scope('mmseg')
    pipeline = Compose(Config.fromfile(SEG.config).train_pipeline)
    img = data / 'semantic' / 'img_dir' / 'train' / '0001.png'
    with pytest.raises(ValueError, match=r'0001\.png holds value\(s\) \[259\]'):
        pipeline(dict(img_path=str(img), seg_map_path=str(seg), reduce_zero_label=False,
                      seg_fields=[]))


@pytest.mark.parametrize('side', ['high', 'wide'])
def test_one_pixel_segmentation_image(tmp_path, side):
    """mmseg squeezes a 1-px side away and CheckSegSize then failed with
    its own IndexError; LoadSegAnnotations keeps it, CheckSegSize names it."""
    from mmseg.registry import TRANSFORMS
    shape = (1, 9) if side == 'high' else (9, 1)
    path = tmp_path / 'thin.png'
    Image.fromarray(np.ones(shape, np.uint8)).save(path)
    results = TRANSFORMS.build(dict(type='LoadSegAnnotations'))(
        dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[]))
    assert results['gt_seg_map'].shape == shape
    check = TRANSFORMS.build(dict(type='CheckSegSize'))
    assert check(dict(results, ori_shape=shape, img_path='thin.jpg')) is not None
    squeezed = dict(gt_seg_map=np.ones(9, np.uint8), ori_shape=shape, seg_map_path=str(path),
                    img_path='thin.jpg')
    with pytest.raises(ValueError, match=r'thin\.png has shape \(9,\) but its image thin\.jpg '
                       r'is \d+x\d+'):
        check(squeezed)


def test_zero_byte_and_oversized_images(tmp_path):
    from mmengine.registry import TRANSFORMS
    check = TRANSFORMS.build(dict(type='CheckImageFile', max_side=1000))
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty\.jpg is empty \(0 bytes\)'):
        check(dict(img_path=str(empty)))
    text = tmp_path / 'text.png'
    text.write_text('not an image')
    with pytest.raises(ValueError, match=r'text\.png cannot be read as an image'):
        check(dict(img_path=str(text)))
    big = tmp_path / 'big.png'
    Image.new('L', (4000, 3000)).save(big)
    with pytest.raises(ValueError, match=r'big\.png is 4000x3000 \(WxH\), larger than '
                       r'max_side=1000'):
        check(dict(img_path=str(big)))
    ok = tmp_path / 'ok.png'
    Image.new('L', (64, 32)).save(ok)
    assert check(dict(img_path=str(ok)))['img_path'] == str(ok)


def test_oversized_image_in_the_classification_demo(data, tmp_path):
    """One 5000x8 image among 64x64 ones: refused, named, before the batch
    is padded to 5000 px (the demo sets max_image_side=4096)."""
    img = data / 'classification' / 'train' / 'circle' / '0001.png'
    Image.new('RGB', (5000, 8)).save(img)
    with pytest.raises(ValueError, match=r'circle/0001\.png is 5000x8 \(WxH\), larger than '
                       r'max_side=4096'):
        train_tool.main(_cls_args(data, tmp_path / 'w'))
    _no_outputs(tmp_path / 'w')


@pytest.mark.parametrize('label', ['first', '1.5'])
def test_classification_word_or_float_label_without_check_data(data, tmp_path, label):
    """mmpretrain's int() error names no file; the annotation check that
    tools/train.py always runs names file and line."""
    ann = data / 'classification' / 'meta' / 'train.txt'
    lines = ann.read_text().splitlines()
    lines[2] = lines[2].rsplit(' ', 1)[0] + ' ' + label
    ann.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DatasetError, match=rf"train\.txt:3: label '{label}' is not an "
                       'integer'):
        train_tool.main(_cls_args(data, tmp_path / 'w'))
    _no_outputs(tmp_path / 'w')


DET = DEMOS[2]


def _det_train(data, tmp_path):
    train_tool.main([DET.config, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                     *DET.data_options(data), 'train_cfg.max_iters=1'])


@pytest.mark.parametrize('damage,match', [
    (lambda d: d.pop('annotations'), r"key 'annotations' is missing or not a list"),
    (lambda d: d['annotations'][0].update(bbox=[10.0, 10.0, -5.0, 8.0]),
     r'annotation id 1 has bbox \[10\.0, 10\.0, -5\.0, 8\.0\] with a negative width'),
    (lambda d: d['annotations'][1].update(bbox=[float('nan'), 1.0, 5.0, 5.0]),
     r'annotation id 2 has bbox \[nan, 1\.0, 5\.0, 5\.0\]; expected .* finite numbers'),
    (lambda d: d['annotations'][2].update(category_id=42),
     r'annotation id 3 has category_id 42, not in "categories"'),
    (lambda d: d['images'][1].update(id=d['images'][0]['id']),
     r'image id \d+ appears twice'),
], ids=['no-annotations', 'negative-width', 'nan', 'unknown-category', 'duplicate-image-id'])
def test_coco_silent_cases_refused_before_training(data, tmp_path, damage, match):
    """Without --check-data: tools/train.py's annotation check refuses them
    (mmdet would drop or mix up the instances and train on)."""
    ann, coco = _coco(data)
    _edit_json(ann, damage)
    with pytest.raises(DatasetError, match=match):
        _det_train(data, tmp_path)
    _no_outputs(tmp_path / 'w')
    with pytest.raises(DatasetError, match=match):
        check_coco_instances(str(ann), str(coco / 'train'))


def test_coco_boxes_mmdet_drops_are_counted_and_named(data):
    ann, coco = _coco(data)

    def damage(d):
        d['annotations'][0]['bbox'][2] = 0.5
        d['annotations'][3]['area'] = 0
    _edit_json(ann, damage)
    with logged('mmcf-coco-drop-test') as (logger, records):
        report = check_coco_instances(str(ann), str(coco / 'train'), logger=logger)
    assert report['dropped_by_mmdet'] == 2
    assert "2 annotation(s) have a box narrower or lower than 1 px, or an area <= 0, which " \
        "mmdet's CocoDataset drops from training: ids [1, 4]" in records[0].getMessage()


@pytest.mark.parametrize('rle,match', [
    (dict(size=[32, 32], counts=[100, 5]), r'RLE of size \[32, 32\] but its image is 64x64'),
    (dict(size=[64, 64], counts=[100, 5]), r'RLE counts summing to 105 pixels, not 64x64'),
    (dict(size=[64, 64], counts='j035000>'), r'compressed RLE whose runs cover 64 pixels'),
    (dict(size=[64, 64], counts='!!bad'), r'compressed RLE that does not decode: character'),
], ids=['wrong-size', 'short-counts', 'short-string', 'malformed'])
def test_coco_wrong_size_or_malformed_rle(data, rle, match):
    ann, coco = _coco(data)
    _edit_json(ann, lambda d: d['annotations'][0].update(segmentation=rle))
    with pytest.raises(DatasetError, match=r'annotation id 1 has (an |a )?' + match):
        check_coco_instances(str(ann), str(coco / 'train'), check_images=False)


def test_check_dataset_config_with_cfg_options(data, capsys):
    root = str(data / 'classification')
    options = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]
    assert check_dataset_tool.main(['--config', CLS.config, '--cfg-options', *options]) == 0
    assert 'train_dataloader: ok' in capsys.readouterr().out
    assert check_dataset_tool.main(['--config', CLS.config, '--cfg-options',
                                    'train_dataloader.dataset.data_roots=x']) == 1
    assert "takes no argument 'data_roots'" in capsys.readouterr().err
