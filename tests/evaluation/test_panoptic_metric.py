"""PanopticQualityMetric (mmcf.evaluation): hand-made examples, bad input,
registry build."""
import json

import mmcv
import numpy as np
import pytest
import torch

from mmcf.evaluation import PanopticQualityMetric

# JSON categories (ids deliberately not in the class order below)
CATEGORIES = [
    dict(id=1, name='cat', isthing=1),
    dict(id=2, name='dog', isthing=1),
    dict(id=3, name='bird', isthing=1),  # never appears anywhere
    dict(id=10, name='sky', isthing=0),
    dict(id=11, name='grass', isthing=0),
]
# dataset_meta classes -> prediction labels (mapped to JSON by name)
CLASSES = ('sky', 'cat', 'grass', 'dog', 'bird')
SKY, CAT, GRASS, DOG, BIRD = range(5)
VOID = len(CLASSES)  # mmdet's "unlabeled" prediction label
OFF = 1000  # INSTANCE_OFFSET


def write_png(path, ids):
    ids = np.asarray(ids, dtype=np.int64)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1)
    mmcv.imwrite(rgb[..., ::-1].astype(np.uint8), str(path))  # BGR on disk


def write_dataset(tmp_path, images):
    """images: list of (image_id, file_name, ids (H, W), segments_info)."""
    seg_dir = tmp_path / 'panoptic'
    seg_dir.mkdir(exist_ok=True)
    data = dict(images=[], annotations=[], categories=CATEGORIES)
    for image_id, file_name, ids, segments in images:
        write_png(seg_dir / file_name, ids)
        h, w = np.asarray(ids).shape
        data['images'].append(
            dict(id=image_id, file_name=file_name.replace('.png', '.jpg'),
                 height=h, width=w))
        data['annotations'].append(
            dict(image_id=image_id, file_name=file_name,
                 segments_info=[dict(id=i, category_id=c, iscrowd=crowd)
                                for i, c, crowd in segments]))
    ann_file = tmp_path / 'panoptic.json'
    ann_file.write_text(json.dumps(data))
    return str(ann_file), str(seg_dir)


def sample(pan, img_id, img_path):
    pan = torch.as_tensor(np.asarray(pan, dtype=np.int64))
    return dict(img_id=img_id, img_path=img_path, ori_shape=tuple(pan.shape),
                pred_panoptic_seg=dict(sem_seg=pan[None]))


def make_metric(ann_file, seg_dir, classes=CLASSES, **kwargs):
    metric = PanopticQualityMetric(ann_file=ann_file, seg_prefix=seg_dir,
                                   **kwargs)
    if classes is not None:
        metric.dataset_meta = dict(classes=classes)
    return metric


# ---------------------------------------------------------------------------
# the hand-made example
# ---------------------------------------------------------------------------
def hand_example(tmp_path):
    # image 1 (8x8), GT ids: sky (id 1) rows 0-3; cat (id 2) rows 4-7 x
    # cols 0-3 (16 px); grass (id 3) rows 4-7 x cols 4-7 (16 px)
    gt1 = np.zeros((8, 8), np.int64)
    gt1[:4] = 1
    gt1[4:, :4] = 2
    gt1[4:, 4:] = 3
    seg1 = [(1, 10, 0), (2, 1, 0), (3, 11, 0)]
    # image 2 (8x8), GT ids: sky (id 5) rows 0-1 (16 px); dog (id 6)
    # rows 2-5 x cols 0-3 (16 px); crowd of cats (id 7) rows 2-5 x cols 4-7;
    # grass (id 1000 = R 232, G 3) rows 6-7 x cols 0-5 (12 px);
    # PNG void (id 0) rows 6-7 x cols 6-7 (4 px)
    gt2 = np.zeros((8, 8), np.int64)
    gt2[:2] = 5
    gt2[2:6, :4] = 6
    gt2[2:6, 4:] = 7
    gt2[6:, :6] = 1000
    seg2 = [(5, 10, 0), (6, 2, 0), (7, 1, 1), (1000, 11, 0)]
    ann_file, seg_dir = write_dataset(
        tmp_path, [(1, 'a.png', gt1, seg1), (2, 'b.png', gt2, seg2)])

    # image 1 prediction: sky exact (TP, IoU 1); cat rows 4-7 x cols 0-2
    # (12 px, IoU 12/16 = 0.75, TP); grass rows 4-7 x cols 3-7 (20 px,
    # IoU 16/20 = 0.8, TP)
    p1 = np.full((8, 8), SKY)
    p1[4:, :3] = CAT + 1 * OFF
    p1[4:, 3:] = GRASS
    # image 2 prediction: rows 0-1 unlabeled -> GT sky is an FN (raw
    # torchmetrics would not count it: > 50% predicted void); dog rows 2-5 x
    # cols 0-1 (8 px): IoU 8/16 = 0.5, not > 0.5 -> dog FP and dog FN;
    # rows 2-5 x cols 2-3 unlabeled; a cat over the crowd region (100% on
    # target void -> not an FP); grass rows 6-7 (16 px, 4 on PNG void):
    # IoU 12 / (16 - 4 + 12 - 12) = 1.0, TP
    p2 = np.full((8, 8), VOID)
    p2[2:6, :2] = DOG + 1 * OFF
    p2[2:6, 4:] = CAT + 1 * OFF
    p2[6:] = GRASS
    # image 2 is found by file name (its img_id is not in the JSON)
    samples = [sample(p1, 1, 'imgs/a.jpg'), sample(p2, 99, 'imgs/b.jpg')]
    return ann_file, seg_dir, samples


def test_hand_example(tmp_path):
    ann_file, seg_dir, samples = hand_example(tmp_path)
    metric = make_metric(ann_file, seg_dir, classwise=True)
    metric.process({}, samples)

    stats = {k: sum(r[k] for r in metric.results)
             for k in ('iou_sum', 'true_positives', 'false_positives',
                       'false_negatives')}
    # per class (label order sky, cat, grass, dog, bird)
    assert stats['true_positives'].tolist() == [1, 1, 2, 0, 0]
    assert stats['false_positives'].tolist() == [0, 0, 0, 1, 0]
    assert stats['false_negatives'].tolist() == [1, 0, 0, 1, 0]
    assert stats['iou_sum'] == pytest.approx([1.0, 0.75, 1.8, 0.0, 0.0])

    res = metric.evaluate(2)
    # per class (PQ, SQ, RQ):
    #   sky   tp 1 fn 1, iou 1   -> PQ 1/1.5 = 2/3, SQ 1,    RQ 2/3
    #   cat   tp 1, iou 0.75     -> PQ 0.75,        SQ 0.75, RQ 1
    #   grass tp 2, iou 1.8      -> PQ 0.9,         SQ 0.9,  RQ 1
    #   dog   fp 1 fn 1          -> PQ 0,           SQ 0,    RQ 0
    #   bird  no segments        -> left out of every average
    # things (cat, dog), stuff (sky, grass), all four
    expected = {
        'PQ': (2 / 3 + 0.75 + 0.9 + 0) / 4 * 100,
        'SQ': (1 + 0.75 + 0.9 + 0) / 4 * 100,
        'RQ': (2 / 3 + 1 + 1 + 0) / 4 * 100,
        'PQ_th': (0.75 + 0) / 2 * 100,
        'SQ_th': (0.75 + 0) / 2 * 100,
        'RQ_th': (1 + 0) / 2 * 100,
        'PQ_st': (2 / 3 + 0.9) / 2 * 100,
        'SQ_st': (1 + 0.9) / 2 * 100,
        'RQ_st': (2 / 3 + 1) / 2 * 100,
    }
    assert set(res) == {'coco_panoptic/' + k for k in expected}
    for key, value in expected.items():
        assert res['coco_panoptic/' + key] == pytest.approx(value), key


def test_raw_torchmetrics_drops_mostly_void_fn():
    """Why unlabeled prediction pixels get a dummy stuff class: with them as
    void, raw torchmetrics does not count the GT segment as an FN."""
    from torchmetrics.detection import PanopticQuality
    target = torch.zeros(1, 4, 4, 2, dtype=torch.long)
    target[..., 0] = 1  # one stuff segment over the whole image
    preds = torch.full_like(target, 7)  # unknown category -> void
    preds[..., 1] = 0
    pq = PanopticQuality(things={0}, stuffs={1},
                         allow_unknown_preds_category=True)
    pq.update(preds, target)
    assert pq.false_negatives.tolist() == [0, 0]


def test_perfect_prediction(tmp_path):
    ann_file, seg_dir, _ = hand_example(tmp_path)
    metric = make_metric(ann_file, seg_dir)
    data = json.loads(open(ann_file).read())
    samples = []
    for ann in data['annotations']:
        rgb = mmcv.imread(f'{seg_dir}/{ann["file_name"]}',
                          channel_order='rgb').astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        pan = np.full(ids.shape, VOID)
        names = {c['id']: c['name'] for c in CATEGORIES}
        for k, seg in enumerate(ann['segments_info']):
            if seg['iscrowd']:
                continue  # predicting nothing on a crowd region costs nothing
            label = CLASSES.index(names[seg['category_id']])
            instance = k + 1 if label in (CAT, DOG) else 0
            pan[ids == seg['id']] = label + instance * OFF
        samples.append(sample(pan, ann['image_id'], 'x.jpg'))
    metric.process({}, samples)
    res = metric.evaluate(len(samples))
    for key in ('PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st', 'SQ_st',
                'RQ_st'):
        assert res['coco_panoptic/' + key] == pytest.approx(100.0), key


# ---------------------------------------------------------------------------
# stuff-only and things-only images
# ---------------------------------------------------------------------------
def stuff_and_things_images(tmp_path):
    stuff = np.ones((6, 6), np.int64)  # sky id 1 rows 0-2, grass id 2 3-5
    stuff[3:] = 2
    things = np.zeros((6, 6), np.int64)  # two cats and a dog on PNG void
    things[:2, :2] = 1
    things[4:, 4:] = 2
    things[:2, 4:] = 3
    ann_file, seg_dir = write_dataset(tmp_path, [
        (1, 'stuff.png', stuff, [(1, 10, 0), (2, 11, 0)]),
        (2, 'things.png', things, [(1, 1, 0), (2, 1, 0), (3, 2, 0)]),
    ])
    pred_stuff = np.where(stuff == 1, SKY, GRASS)
    pred_things = np.full((6, 6), VOID)
    pred_things[:2, :2] = CAT + 1 * OFF
    pred_things[4:, 4:] = CAT + 2 * OFF
    pred_things[:2, 4:] = DOG + 1 * OFF
    return (ann_file, seg_dir, sample(pred_stuff, 1, 'stuff.jpg'),
            sample(pred_things, 2, 'things.jpg'))


def test_stuff_only_and_things_only(tmp_path):
    ann_file, seg_dir, s_stuff, s_things = stuff_and_things_images(tmp_path)

    metric = make_metric(ann_file, seg_dir)
    metric.process({}, [s_things])
    res = metric.evaluate(1)
    assert res['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert res['coco_panoptic/PQ_th'] == pytest.approx(100.0)
    # no stuff class has a TP, FP or FN: the empty average is defined as 0
    # (as panopticapi does), not a division error / NaN
    for key in ('PQ_st', 'SQ_st', 'RQ_st'):
        assert res['coco_panoptic/' + key] == 0.0

    metric = make_metric(ann_file, seg_dir)
    metric.process({}, [s_stuff])
    res = metric.evaluate(1)
    assert res['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert res['coco_panoptic/PQ_st'] == pytest.approx(100.0)
    assert res['coco_panoptic/PQ_th'] == 0.0

    metric = make_metric(ann_file, seg_dir)
    metric.process({}, [s_stuff, s_things])
    res = metric.evaluate(2)
    assert all(v == pytest.approx(100.0) for v in res.values())


def test_without_dataset_meta_uses_json_order(tmp_path):
    ann_file, seg_dir, s_stuff, s_things = stuff_and_things_images(tmp_path)
    metric = make_metric(ann_file, seg_dir, classes=None)
    # JSON id order: cat 0, dog 1, bird 2, sky 3, grass 4; unlabeled 5
    p = s_things['pred_panoptic_seg']['sem_seg']
    relabel = {CAT: 0, DOG: 1, VOID: 5}
    labels = p % OFF
    p = (p - labels) + labels.apply_(lambda v: relabel[v])
    metric.process({}, [sample(p[0], 2, 'things.jpg')])
    assert metric.evaluate(1)['coco_panoptic/PQ_th'] == pytest.approx(100.0)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_png_id_without_segments_info(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ids[0, 0] = 7  # not in segments_info
    ann_file, seg_dir = write_dataset(tmp_path,
                                      [(1, 'extra.png', ids, [(1, 10, 0)])])
    metric = make_metric(ann_file, seg_dir)
    with pytest.raises(ValueError, match=r'extra\.png.*\[7\]'):
        metric.process({}, [sample(np.zeros((4, 4)), 1, 'extra.jpg')])


def test_segments_info_id_absent_from_png(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(
        tmp_path, [(1, 'missing.png', ids, [(1, 10, 0), (9, 1, 0)])])
    metric = make_metric(ann_file, seg_dir)
    with pytest.raises(ValueError, match=r'segment id 9 .*missing\.png'):
        metric.process({}, [sample(np.zeros((4, 4)), 1, 'missing.jpg')])


def test_prediction_shape_mismatch(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(tmp_path,
                                      [(1, 'shape.png', ids, [(1, 10, 0)])])
    metric = make_metric(ann_file, seg_dir)
    with pytest.raises(ValueError, match=r'\(4, 5\).*shape\.png.*\(4, 4\)'):
        metric.process({}, [sample(np.zeros((4, 5)), 1, 'shape.jpg')])


def test_image_without_annotation(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(tmp_path,
                                      [(1, 'known.png', ids, [(1, 10, 0)])])
    metric = make_metric(ann_file, seg_dir)
    with pytest.raises(ValueError, match=r'image id 42.*nope\.png'):
        metric.process({}, [sample(np.zeros((4, 4)), 42, 'dir/nope.jpg')])


def test_json_category_not_in_classes(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(tmp_path,
                                      [(1, 'c.png', ids, [(1, 10, 0)])])
    metric = make_metric(ann_file, seg_dir, classes=CLASSES[:-1])
    with pytest.raises(ValueError, match=r"'bird'.*panoptic\.json"):
        metric.process({}, [sample(np.zeros((4, 4)), 1, 'c.jpg')])


def test_prediction_label_out_of_range(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(tmp_path,
                                      [(1, 'r.png', ids, [(1, 10, 0)])])
    metric = make_metric(ann_file, seg_dir)
    with pytest.raises(ValueError, match=r'r\.png.*\[17\]'):
        metric.process({}, [sample(np.full((4, 4), 17), 1, 'r.jpg')])


# ---------------------------------------------------------------------------
# registry + mmengine Evaluator
# ---------------------------------------------------------------------------
def test_build_from_registry_and_evaluator(tmp_path):
    import mmcf  # noqa: F401  (registers the metric)
    from mmdet.registry import METRICS
    from mmdet.structures import DetDataSample
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData

    ann_file, seg_dir, samples = hand_example(tmp_path)
    init_default_scope('mmdet')  # conftest clears it after the test
    cfg = dict(type='PanopticQualityMetric', ann_file=ann_file,
               seg_prefix=seg_dir, classwise=True)
    metric = METRICS.build(cfg)
    assert isinstance(metric, PanopticQualityMetric)

    evaluator = Evaluator(cfg)
    evaluator.dataset_meta = dict(classes=CLASSES)
    data_samples = []
    for s in samples:  # as a model returns them: DetDataSample + PixelData
        ds = DetDataSample(metainfo=dict(img_id=s['img_id'],
                                         img_path=s['img_path'],
                                         ori_shape=s['ori_shape']))
        ds.pred_panoptic_seg = PixelData(**s['pred_panoptic_seg'])
        data_samples.append(ds)
    evaluator.process(data_samples)
    res = evaluator.evaluate(2)
    assert set(res) == {f'coco_panoptic/{k}{s}' for k in ('PQ', 'SQ', 'RQ')
                        for s in ('', '_th', '_st')}
    assert res['coco_panoptic/PQ'] == pytest.approx(
        (2 / 3 + 0.75 + 0.9) / 4 * 100)
