"""Panoptic quality as COCO defines it, the generated COCO panoptic dataset, the pre-flight of the
thing / stuff counts and the panoptic drawing of tools/infer.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import panopticapi.utils as panopticapi_utils  # make setup installs it (tools/setup_env.sh)
import pytest
from PIL import Image

from pvt_det.cli import ToolError

THINGS, STUFF = ('square', 'circle', 'triangle'), ('sky', 'ground')


# ---------------------------------------------------------------------------------------------- PQ
def _write_png(path: Path, ids: np.ndarray) -> None:
    Image.fromarray(panopticapi_utils.id2rgb(ids)).save(path)


@pytest.fixture(scope='module')
def pq_case(tmp_path_factory):
    """One 20x20 image exercising every rule of COCO's PQ: a match (IoU > 0.5), a missed thing (FN), a
    class-mismatched prediction (FP), predictions lying mostly on void or on a crowd region of their
    class (ignored), a crowd ground truth (never a FN)."""
    root = tmp_path_factory.mktemp('pq')
    gt = np.zeros((20, 20), np.uint32)  # 0 = VOID
    gt[0:10, 0:10] = 10      # circle A, 100 px
    gt[10:20, 0:5] = 11      # circle B, 50 px: nothing predicts it -> FN
    gt[10:20, 15:20] = 20    # square, iscrowd
    gt[0:10, 10:20] = 30     # sky, 100 px
    pred = np.zeros((20, 20), np.uint32)
    pred[0:10, 0:8] = 1      # circle: IoU 80 / 100 with A -> TP 0.8
    pred[0:10, 8:20] = 2     # sky: 100 / (120 + 100 - 100) with sky -> TP 0.8333
    pred[10:20, 12:20] = 3   # square: 30 px void + 50 px its crowd -> ignored
    pred[10:20, 5:10] = 4    # circle on void only -> ignored
    pred[10:20, 0:5] = 5     # sky on circle B -> FP sky
    categories = [dict(id=1, name='circle', isthing=1), dict(id=2, name='square', isthing=1),
                  dict(id=3, name='sky', isthing=0)]
    gt_ann = dict(image_id=1, file_name='1.png', segments_info=[
        dict(id=10, category_id=1, iscrowd=0, area=100), dict(id=11, category_id=1, iscrowd=0, area=50),
        dict(id=20, category_id=2, iscrowd=1, area=50), dict(id=30, category_id=3, iscrowd=0, area=100)])
    pred_ann = dict(image_id=1, file_name='1.png', segments_info=[
        dict(id=1, category_id=1), dict(id=2, category_id=3), dict(id=3, category_id=2),
        dict(id=4, category_id=1), dict(id=5, category_id=3)])
    for folder, ids in (('gt', gt), ('pred', pred)):
        (root / folder).mkdir()
        _write_png(root / folder / '1.png', ids)
    return root, [(gt_ann, pred_ann)], {c['id']: c for c in categories}


# By the definition (Kirillov et al., COCO panoptic): PQ = sum of matched IoUs / (TP + FP / 2 + FN / 2)
# per category, averaged over the categories with any TP, FP or FN (the crowd-only square has none).
EXPECTED = {
    'All': dict(pq=(0.8 / 1.5 + (100 / 120) / 1.5) / 2, sq=(0.8 + 100 / 120) / 2, rq=1 / 1.5, n=2),
    'Things': dict(pq=0.8 / 1.5, sq=0.8, rq=1 / 1.5, n=1),
    'Stuff': dict(pq=(100 / 120) / 1.5, sq=100 / 120, rq=1 / 1.5, n=1),
}


def _averages(pq_stat, categories) -> dict:
    return {name: pq_stat.pq_average(categories, isthing=isthing)[0]
            for name, isthing in (('All', None), ('Things', True), ('Stuff', False))}


def test_panopticapi_pq_matches_the_definition(pq_case):
    """The installed panopticapi (panopticapi-lite: cocodataset/panopticapi's evaluation.py) on the case."""
    from panopticapi.evaluation import pq_compute_single_core
    root, annotations, categories = pq_case
    results = _averages(pq_compute_single_core(0, annotations, str(root / 'gt'), str(root / 'pred'),
                                               categories), categories)
    for name, expected in EXPECTED.items():
        assert results[name] == pytest.approx(expected), name


def test_mmdet_pq_equals_panopticapi(pq_case):
    """CocoPanopticMetric's own copy of the loop (mmdet.evaluation.functional) counts the same."""
    from mmdet.evaluation.functional.panoptic_utils import pq_compute_single_core
    root, annotations, categories = pq_case
    stat = pq_compute_single_core(0, annotations, str(root / 'gt'), str(root / 'pred'), categories)
    for name, expected in EXPECTED.items():
        assert _averages(stat, categories)[name] == pytest.approx(expected), name


# ---------------------------------------------------------------------------------------------- dataset
@pytest.fixture(scope='module')
def dataset_root(tmp_path_factory):
    from pvt_det.datasets.synthetic_panoptic import make_coco_panoptic_dataset
    root = tmp_path_factory.mktemp('coco_panoptic')
    make_coco_panoptic_dataset(root, num_train=3, num_val=2, image_size=(64, 80), max_objects=3, seed=3)
    return root


def test_generated_dataset_is_coco_panoptic(dataset_root):
    content = json.loads((dataset_root / 'annotations' / 'panoptic_train2017.json').read_text())
    categories = {c['id']: c for c in content['categories']}
    assert [c['name'] for c in content['categories']] == list(THINGS + STUFF)
    assert [c['isthing'] for c in content['categories']] == [1, 1, 1, 0, 0]
    assert len(content['images']) == len(content['annotations']) == 3
    for image, annotation in zip(content['images'], content['annotations']):
        assert (image['height'], image['width']) == (64, 80)
        assert (dataset_root / 'train2017' / image['file_name']).is_file()
        rgb = np.array(Image.open(dataset_root / 'annotations' / 'panoptic_train2017' / annotation['file_name']))
        ids = panopticapi_utils.rgb2id(rgb)
        present, areas = np.unique(ids, return_counts=True)
        segments = {s['id']: s for s in annotation['segments_info']}
        assert set(present.tolist()) - {0} == set(segments)  # every pixel's segment is listed, and back
        for segment_id, area in zip(present, areas):
            if segment_id:
                assert segments[segment_id]['area'] == area
        assert any(categories[s['category_id']]['isthing'] for s in segments.values())
        assert any(not categories[s['category_id']]['isthing'] for s in segments.values())
    instances = json.loads((dataset_root / 'annotations' / 'instances_train2017.json').read_text())
    things = sum(categories[s['category_id']]['isthing'] for a in content['annotations']
                 for s in a['segments_info'])
    assert len(instances['annotations']) == things


def test_generated_dataset_loads_in_mmdet(dataset_root):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    dataset = DATASETS.build(dict(
        type='CocoPanopticDataset', data_root=str(dataset_root), ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        metainfo=dict(classes=THINGS + STUFF, thing_classes=THINGS, stuff_classes=STUFF),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadPanopticAnnotations'),
                  dict(type='PackDetInputs')]))
    sample = dataset[0]['data_samples']
    semantic = sample.gt_sem_seg.sem_seg.numpy()
    assert set(np.unique(semantic)) >= {3, 4}  # sky and ground
    assert len(sample.gt_instances) >= 1 and sample.gt_instances.labels.max() < len(THINGS)


# ---------------------------------------------------------------------------------------------- preflight
@pytest.fixture(scope='module')
def demo_config(tmp_path_factory, dataset_root):
    from pvt_det.config.loading import shipped_config
    from pvt_det.tools.demo_panoptic import PANOPTIC_CONFIG
    path = tmp_path_factory.mktemp('configs') / 'm2f_shapes.py'
    path.write_text(PANOPTIC_CONFIG.format(
        base=str(shipped_config('mask2former_pvt_v2_b2_coco_panoptic.py').resolve()),
        data_root=f'{dataset_root}/', classes=THINGS + STUFF, things=THINGS, stuff=STUFF, num_things=3,
        num_stuff=2, size=64, dims=64, queries=10, points=256, batch=2, iters=2, warmup=1, lr=1e-3,
        log_every=1))
    return path


def _check(config: Path, **options):
    from pvt_det.config.loading import load_config
    from pvt_det.config.preflight import check_config
    check_config(load_config(config, options or None), ('train_dataloader', 'val_dataloader'))


def test_preflight_accepts_matching_counts(demo_config):
    _check(demo_config)  # also: the recipe's CocoMetric reads instances_*.json next to a panoptic dataset


@pytest.mark.parametrize('options,message', [
    ({'model.panoptic_head.num_things_classes': 4}, 'model.panoptic_head.num_things_classes=4 but '
                                                    'train_dataloader.dataset has 3 thing classes'),
    ({'model.panoptic_fusion_head.num_stuff_classes': 53}, 'model.panoptic_fusion_head.num_stuff_classes=53'),
    ({'model.panoptic_head.loss_cls.class_weight': [1.0] * 134}, 'class_weight has 134 values'),
    # (skipping the file-order check of the classes, which would see these first)
    ({'train_dataloader.dataset.metainfo.classes': STUFF + THINGS, 'preflight.skip': ['ann_classes']},
     'thing classes followed by the stuff'),
    ({'preflight.skip': ['ann_classes'], 'train_dataloader.dataset.metainfo.thing_classes': ('square', 'circle', 'sky'),
      'train_dataloader.dataset.metainfo.stuff_classes': ('triangle', 'ground'),
      'train_dataloader.dataset.metainfo.classes': ('square', 'circle', 'sky', 'triangle', 'ground')},
     "marks ['sky', 'triangle'] with another isthing"),
])
def test_preflight_names_the_mismatch(demo_config, options, message):
    with pytest.raises(ToolError, match="check 'num_classes'") as error:
        _check(demo_config, **options)
    assert message in str(error.value)


# ---------------------------------------------------------------------------------------------- drawing
def test_panoptic_drawing_colours_each_segment():
    from pvt_det.tools.infer_panoptic import draw_panoptic, segments_of
    void = 5
    panoptic = np.full((128, 128), 3, np.int64)                    # sky (stuff: no instance id)
    panoptic[64:, :] = 4                                           # ground
    panoptic[16:48, 16:48] = 1 + 1 * 1000                          # circle #1
    panoptic[16:48, 80:112] = 1 + 2 * 1000                         # circle #2
    panoptic[80:88, 0:8] = void
    segments = segments_of(panoptic, num_classes=5, num_things=3)
    assert [(s['label'], s['isthing']) for s in segments] == [(4, False), (3, False), (1, True), (1, True)]
    assert [s['id'] for s in segments] == [1, 2, 3, 4]
    assert segments[2]['bbox'] in ([16, 16, 32, 32], [80, 16, 32, 32])
    image = np.full((128, 128, 3), 128, np.uint8)
    drawn = draw_panoptic(image, segments, THINGS + STUFF, [(220, 40, 40)] * 5)
    first, second = drawn[19, 30].astype(int), drawn[19, 94].astype(int)
    assert np.abs(first - second).sum() > 30  # two circles, two shades of the circle colour
    assert (drawn[82:86, 2:6] == 128).all()  # void stays the image
    assert (drawn[26:38, 20:44] != drawn[19, 30]).any(axis=-1).sum() > 20  # the label on circle #1
