"""Penn-Fudan at 128 px: tools/dataset/convert_pennfudan.py on made-up photos
in the published layout, and the Penn-Fudan configs on the shared copy
(skipped where that copy is absent)."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, load_tool

SHARED = osp.normpath(osp.join(ROOT, '..', 'shared', 'data', 'pennfudan_128'))
pf = load_tool(osp.join('dataset', 'convert_pennfudan'))


def _source(folder, photos):
    """``photos``: name -> (H, W, boxes of persons as (y0, y1, x0, x1))."""
    os.makedirs(folder / 'PNGImages')
    os.makedirs(folder / 'PedMasks')
    rng = np.random.default_rng(0)
    for name, (h, w, boxes) in photos.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            folder / 'PNGImages' / f'{name}.png')
        mask = np.zeros((h, w), np.uint8)
        for k, (y0, y1, x0, x1) in enumerate(boxes, 1):
            mask[y0:y1, x0:x1] = k
        Image.fromarray(mask).save(folder / 'PedMasks' / f'{name}_mask.png')
    return folder


def test_convert_resizes_splits_and_encodes_people(tmp_path):
    from pycocotools import mask as mask_utils
    photos = {f'FudanPed{i:05d}': (200, 400, [(20, 180, 40, 120), (10, 190, 300, 306)])
              for i in range(1, 5)}
    photos['PennPed00001'] = (300, 150, [(30, 270, 30, 120)])
    src = _source(tmp_path / 'src', photos)
    report = pf.convert_pennfudan(src, tmp_path / 'out', size=100, min_size=4, seed=0,
                                  split_sizes=(3, 1), verbose=False)
    assert {k: v[0] for k, v in report.items()} == {'train': 3, 'val': 1, 'test': 1}
    # the split is random.Random(0).shuffle of the sorted names, in order
    order = sorted(photos)
    __import__('random').Random(0).shuffle(order)
    coco = {s: json.loads((tmp_path / 'out' / 'annotations' / f'instances_{s}.json')
                          .read_text()) for s in ('train', 'val', 'test')}
    assert [i['file_name'] for i in coco['train']['images']] == sorted(
        f'{n}.png' for n in order[:3])
    assert [i['file_name'] for i in coco['val']['images']] == [f'{order[3]}.png']
    assert coco['train']['categories'] == [{'id': 1, 'name': 'person'}]
    for split, data in coco.items():
        for img in data['images']:
            with Image.open(tmp_path / 'out' / split / img['file_name']) as im:
                assert im.size == (img['width'], img['height'])
            fudan = img['file_name'].startswith('Fudan')
            # longer side 100: 400x200 -> 100x50, 150x300 -> 50x100
            assert (img['width'], img['height']) == ((100, 50) if fudan else (50, 100))
        for ann in data['annotations']:
            img = next(i for i in data['images'] if i['id'] == ann['image_id'])
            m = mask_utils.decode(ann['segmentation'])
            assert m.shape == (img['height'], img['width']) and m.sum() == ann['area']
            ys, xs = np.nonzero(m)
            assert ann['bbox'] == [float(xs.min()), float(ys.min()),
                                   float(xs.max() - xs.min() + 1),
                                   float(ys.max() - ys.min() + 1)]
            assert ann['iscrowd'] == 0 and ann['category_id'] == 1
    # the 6-px-wide person becomes 1.5 px at 100 px and is dropped (min_size 4)
    fudan = [a for s in coco.values() for a in s['annotations']
             if next(i for i in s['images'] if i['id'] == a['image_id'])['file_name']
             .startswith('Fudan')]
    assert len(fudan) == 4 and all(a['bbox'][2] >= 4 for a in fudan)
    ids = [a['id'] for a in coco['train']['annotations']]
    assert ids == list(range(1, len(ids) + 1))


def test_convert_refuses_bad_sources_and_leaves_nothing(tmp_path):
    src = _source(tmp_path / 'src', {'FudanPed00001': (40, 30, [(2, 30, 2, 20)])})
    os.remove(src / 'PedMasks' / 'FudanPed00001_mask.png')
    with pytest.raises(pf.ConversionError, match='have no mask in .*PedMasks: FudanPed00001'):
        pf.convert_pennfudan(src, tmp_path / 'out', split_sizes=(1, 0), verbose=False)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(src / 'PedMasks' /
                                                       'FudanPed00001_mask.png')
    with pytest.raises(pf.ConversionError, match='FudanPed00001_mask.png is 10x10'):
        pf.convert_pennfudan(src, tmp_path / 'out', split_sizes=(1, 0), verbose=False)
    assert not (tmp_path / 'out').exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith('.out')] == []
    with pytest.raises(pf.ConversionError, match='need 5 photos, the source has 1'):
        pf.convert_pennfudan(src, tmp_path / 'out', split_sizes=(4, 1), verbose=False)
    assert pf.main([str(src), str(tmp_path / 'out'), '--split-sizes', '4', '1']) == 1


def test_resized_size_keeps_the_aspect_ratio():
    assert pf.resized_size(559, 536, 128) == (128, 123)
    assert pf.resized_size(300, 600, 128) == (64, 128)
    assert pf.resized_size(1000, 3, 128) == (128, 1)


@pytest.mark.skipif(not osp.isdir(SHARED), reason='../shared/data/pennfudan_128 is absent')
def test_configs_read_the_shared_copy():
    from mmengine.config import Config
    for name in ('clusterformer-test', 'mask2former_clusterformer-test', 'mask2former_swin-test'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', 'detection',
                                       f'{name}_1xb8-4k_pennfudan-128.py'))
        ds = cfg.train_dataloader.dataset
        assert osp.normpath(ds.data_root) == SHARED and ds.metainfo.classes == ('person', )
        assert osp.isfile(osp.join(ds.data_root, ds.ann_file))
        types = [t.type for t in ds.pipeline]
        for t in ('RandomResize', 'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion'):
            assert t in types
        assert cfg.val_evaluator.ann_file.endswith('instances_val.json')
        assert cfg.train_cfg.max_iters == 4000
