"""PanopticQualityMetric (mmcf.evaluation): hand-made examples of every rule
of the COCO reference (panopticapi's pq_compute), computed by hand in the
comments, bad input, ranks, registry build."""
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
    # image 2 prediction: rows 0-1 unlabeled -> GT sky is an FN (a GT
    # segment predicted as unlabeled is missed); dog rows 2-5 x
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

    per_class = metric.evaluate_results(metric.results)[1]
    # per category id: sky 10, cat 1, grass 11, dog 2 (bird 3 never seen)
    stats = {c: (f['tp'], f['fp'], f['fn'], f['iou']) for c, f in per_class.items()
             if f['tp'] + f['fp'] + f['fn']}
    assert stats == {10: (1, 0, 1, pytest.approx(1.0)), 1: (1, 0, 0, pytest.approx(0.75)),
                     11: (2, 0, 0, pytest.approx(1.8)), 2: (0, 1, 1, 0.0)}

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
# the reference's rules, one case each (mmcf 0.1 differed on the first three)
# ---------------------------------------------------------------------------
def _score(tmp_path, ids, segments, pred, classes=CLASSES):
    """Per-category (tp, fp, fn, iou) of one 8x8 image, and the metrics."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ann_file, seg_dir = write_dataset(tmp_path, [(1, 'x.png', ids, segments)])
    metric = make_metric(ann_file, seg_dir, classes=classes)
    metric.process({}, [sample(pred, 1, 'x.jpg')])
    per_class = metric.evaluate_results(metric.results)[1]
    stats = {c: (f['tp'], f['fp'], f['fn'], pytest.approx(f['iou']))
             for c, f in per_class.items() if f['tp'] + f['fp'] + f['fn']}
    return stats, metric.evaluate(1)


def _crowd_image():
    """Sky (id 1) rows 0-3; a crowd of cats (id 2, category 1) rows 4-7 x
    cols 0-3; grass (id 3) rows 4-7 x cols 4-7."""
    ids = np.ones((8, 8), np.int64)
    ids[4:, :4] = 2
    ids[4:, 4:] = 3
    return ids, [(1, 10, 0), (2, 1, 1), (3, 11, 0)]


def test_crowd_is_ignored_for_its_own_category_only(tmp_path):
    ids, segs = _crowd_image()
    # a cat on the cat crowd: 16/16 px on the crowd of its category -> not an
    # FP; the crowd itself is never an FN
    pred = np.where(ids == 2, CAT + OFF, np.where(ids == 1, SKY, GRASS))
    stats, res = _score(tmp_path / 'a', ids, segs, pred)
    assert stats == {10: (1, 0, 0, 1.0), 11: (1, 0, 0, 1.0)}
    assert res['coco_panoptic/PQ'] == pytest.approx(100.0)
    # a dog on the cat crowd: the crowd of another category is ordinary
    # pixels -> an FP (mmcf 0.1 treated every crowd as void: no FP)
    pred = np.where(ids == 2, DOG + OFF, np.where(ids == 1, SKY, GRASS))
    stats, res = _score(tmp_path / 'b', ids, segs, pred)
    assert stats == {10: (1, 0, 0, 1.0), 11: (1, 0, 0, 1.0), 2: (0, 1, 0, 0.0)}
    # things: dog PQ 0; all: (1 + 1 + 0) / 3
    assert res['coco_panoptic/PQ'] == pytest.approx(200 / 3)
    assert res['coco_panoptic/PQ_th'] == 0.0


def test_union_counts_the_crowd_overlap(tmp_path):
    """A cat (id 4, 8 px) beside the cat crowd (id 2, 8 px); the prediction
    covers both (16 px): IoU = 8 / (8 + 16 - 8 - 0 void) = 0.5, not > 0.5,
    so no match: cat FN; the prediction lies 8/16 = 0.5 (not > 0.5) on the
    crowd of its category, so it is an FP too. (mmcf 0.1 left the crowd out
    of the union: IoU 1, a TP.)"""
    ids, segs = _crowd_image()
    ids[4:6, :4] = 4  # rows 4-5 of the crowd become a non-crowd cat
    segs = segs + [(4, 1, 0)]
    pred = np.where(ids == 1, SKY, GRASS)
    pred[4:, :4] = CAT + OFF
    stats, _ = _score(tmp_path, ids, segs, pred)
    assert stats[1] == (0, 1, 1, 0.0)
    # one cat pixel less: 8 of 15 px on the crowd (> 0.5) -> not an FP; IoU
    # 7 / (8 + 15 - 7) = 0.44 -> still no match, the cat is an FN
    pred[4, 0] = GRASS
    stats, _ = _score(tmp_path / 'b', ids, segs, pred)
    assert stats[1] == (0, 0, 1, 0.0)


def test_prediction_mostly_on_void_is_not_a_false_positive(tmp_path):
    """GT: sky (id 1) rows 0-3, PNG void rows 4-7. A cat of 10 px with 6 on
    void (> 0.5): ignored; one with 4 of 8 on void (= 0.5): an FP."""
    ids = np.zeros((8, 8), np.int64)
    ids[:4] = 1
    pred = np.full((8, 8), VOID)
    pred[:4] = SKY
    pred[2:3, 0:4] = CAT + OFF  # 4 px on sky
    pred[4:5, 0:6] = CAT + OFF  # 6 px on void
    stats, _ = _score(tmp_path / 'a', ids, [(1, 10, 0)], pred)
    # sky: 28 of its 32 px -> IoU 28/32 = 0.875
    assert stats == {10: (1, 0, 0, 0.875)}
    pred[4:5, 4:6] = VOID  # now 4 of 8 on void
    stats, _ = _score(tmp_path / 'b', ids, [(1, 10, 0)], pred)
    assert stats == {10: (1, 0, 0, 0.875), 1: (0, 1, 0, 0.0)}


def test_union_leaves_out_only_void(tmp_path):
    """GT grass (id 1) 8x4 = 32 px, void the other 32 px; the prediction is
    grass on 24 grass px + 16 void px (40 px): IoU = 24 / (32 + 40 - 24 - 16)
    = 0.75."""
    ids = np.zeros((8, 8), np.int64)
    ids[:, :4] = 1
    pred = np.full((8, 8), VOID)
    pred[:, 1:6] = GRASS  # cols 1-3 on grass (24 px), cols 4-5 on void (16 px)
    assert int((pred == GRASS).sum()) == 40
    stats, _ = _score(tmp_path, ids, [(1, 11, 0)], pred)
    assert stats == {11: (1, 0, 0, 0.75)}


def test_two_predictions_of_one_class_on_one_segment(tmp_path):
    """GT dog (id 1) 16 px; predictions dog A 10 px (IoU 0.625: a TP) and
    dog B 6 px inside it (unmatched: an FP)."""
    ids = np.zeros((8, 8), np.int64)
    ids[:2] = 1  # rows 0-1, 16 px
    ids[2:] = 2  # sky
    pred = np.where(ids == 2, SKY, VOID)
    pred[:2, :5] = DOG + 1 * OFF
    pred[:2, 5:] = DOG + 2 * OFF
    stats, res = _score(tmp_path, ids, [(1, 2, 0), (2, 10, 0)], pred)
    assert stats == {2: (1, 1, 0, 0.625), 10: (1, 0, 0, 1.0)}
    # dog PQ = 0.625 / (1 + 0.5) ; sky 1
    assert res['coco_panoptic/PQ_th'] == pytest.approx(0.625 / 1.5 * 100)


def test_class_only_in_the_prediction_counts(tmp_path):
    """A bird nowhere in the ground truth: an FP of bird, whose PQ 0 enters
    the averages; bird-free classes with no TP/FP/FN stay out."""
    ids = np.ones((8, 8), np.int64)
    pred = np.full((8, 8), SKY)
    pred[:2, :2] = BIRD + OFF
    stats, res = _score(tmp_path, ids, [(1, 10, 0)], pred)
    assert stats == {10: (1, 0, 0, 60 / 64), 3: (0, 1, 0, 0.0)}
    assert res['coco_panoptic/PQ'] == pytest.approx(60 / 64 / 2 * 100)
    assert res['coco_panoptic/PQ_th'] == 0.0
    assert res['coco_panoptic/PQ_st'] == pytest.approx(60 / 64 * 100)


def test_image_without_segments(tmp_path):
    """All PNG void: nothing to match; a prediction on it is ignored (all on
    void), so every group averages to 0 with no class seen."""
    ids = np.zeros((8, 8), np.int64)
    stats, res = _score(tmp_path / 'a', ids, [], np.full((8, 8), VOID))
    assert stats == {}
    assert set(res.values()) == {0.0}
    stats, res = _score(tmp_path / 'b', ids, [], np.full((8, 8), CAT + OFF))
    assert stats == {}


def test_results_are_the_same_over_ranks(tmp_path):
    """Split over two "ranks" (two metrics, results gathered as mmengine
    does) or scored in one: the same numbers."""
    ann_file, seg_dir, samples = hand_example(tmp_path)
    one = make_metric(ann_file, seg_dir)
    one.process({}, samples)
    a, b = make_metric(ann_file, seg_dir), make_metric(ann_file, seg_dir)
    a.process({}, samples[1:])
    b.process({}, samples[:1])
    gathered = make_metric(ann_file, seg_dir)
    assert gathered.compute_metrics(a.results + b.results) == \
        one.compute_metrics(one.results)
    with pytest.raises(ValueError, match='scored twice'):
        gathered.compute_metrics(one.results + one.results)


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


def test_unknown_category_id_in_the_ground_truth(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(tmp_path, [(1, 'u.png', ids, [(1, 99, 0)])])
    metric = make_metric(ann_file, seg_dir)
    with pytest.raises(ValueError, match=r'segment id 1 of the PNG .*u\.png has category_id 99'):
        metric.process({}, [sample(np.zeros((4, 4)), 1, 'u.jpg')])


def test_predicted_class_without_a_json_category(tmp_path):
    ids = np.ones((4, 4), np.int64)
    ann_file, seg_dir = write_dataset(tmp_path, [(1, 'n.png', ids, [(1, 10, 0)])])
    metric = make_metric(ann_file, seg_dir, classes=CLASSES + ('fish', ))
    pred = np.full((4, 4), 5)  # 'fish': a class of the model, not of the JSON
    with pytest.raises(ValueError, match=r"n\.jpg.*class 5 \('fish'\)"):
        metric.process({}, [sample(pred, 1, 'n.jpg')])


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


def test_run_length_encoding_matches_pycocotools():
    """The one-pass RLE of every id equals pycocotools' encoding of its mask."""
    from pycocotools import mask as mask_util

    from mmcf.evaluation.panoptic_metric import _encode
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (3, 7), (16, 9)):
        ids = rng.integers(0, 4, (h, w))
        ids[h // 2:, : w // 2] = 9  # a block
        wanted = [0, 1, 2, 3, 9, 5]  # 5 is absent: area 0
        for i, (rle, area) in zip(wanted, _encode(ids, wanted)):
            mask = np.asfortranarray((ids == i).astype(np.uint8))
            ref = mask_util.encode(mask)
            assert rle['counts'] == ref['counts'].decode('ascii') and rle['size'] == [h, w]
            assert area == int(mask.sum())
