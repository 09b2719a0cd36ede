"""The generated COCO and ADE20K stand-ins are in the real layouts and load through mmdet / mmseg."""
import json

import cv2
import numpy as np
import pytest

from pvt_det.datasets import make_ade20k_dataset, make_coco_dataset


def test_coco_masks_are_exactly_the_visible_objects(tmp_path):
    from pycocotools.coco import COCO
    paths = make_coco_dataset(tmp_path, num_train=6, num_val=2, image_size=(96, 128), max_objects=3)
    coco = COCO(str(paths['train_ann']))
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert 1 <= len(anns) <= 3
        masks = [coco.annToMask(a) for a in anns]
        # Shapes never overlap, so no annotation claims pixels another object covers.
        assert np.sum(masks, axis=0).max() <= 1
        image = cv2.imread(str(paths['train_images'] / coco.loadImgs(image_id)[0]['file_name']))
        assert image.shape == (96, 128, 3)
        for ann, mask in zip(anns, masks):
            # The object's colour fills its mask (the class is visible in the pixels).
            inside = image[mask.astype(bool)].astype(float).mean(0)
            background = image[~np.sum(masks, axis=0).astype(bool)].astype(float).mean(0)
            assert np.abs(inside - background).max() > 40
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 96


def test_coco_loads_through_mmdet_with_masks(tmp_path):
    from mmdet.datasets import CocoDataset
    from mmengine.registry import DefaultScope
    make_coco_dataset(tmp_path, num_train=3, num_val=1, image_size=(64, 64),
                      classes=('disc', 'block'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = CocoDataset(
            data_root=str(tmp_path), ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'), metainfo=dict(classes=('disc', 'block')),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                      dict(type='PackDetInputs')])
        sample = dataset[0]['data_samples']
    assert sample.gt_instances.masks.masks.shape[1:] == (64, 64)
    assert set(sample.gt_instances.labels.tolist()) <= {0, 1}
    assert len(sample.gt_instances) == len(sample.gt_instances.bboxes) >= 1


def test_ade20k_layout_and_labels(tmp_path):
    classes = ('background', 'square', 'circle', 'triangle')
    paths = make_ade20k_dataset(tmp_path, num_train=4, num_val=2, image_size=(64, 96), classes=classes)
    assert sorted(p.name for p in (tmp_path / 'images').iterdir()) == ['training', 'validation']
    images = sorted(paths['train_images'].glob('*.jpg'))
    labels = sorted(paths['train_annotations'].glob('*.png'))
    assert len(images) == 4 and [p.stem for p in images] == [p.stem for p in labels]
    seen = set()
    for path in labels:
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert label.shape == (64, 96) and label.dtype == np.uint8
        values = set(np.unique(label).tolist())
        assert {0, 1} <= values and values <= set(range(len(classes) + 1))
        seen |= values
    assert len(seen - {0, 1}) >= 2  # several shape classes occur


def test_ade20k_layout_loads_through_mmseg_with_reduce_zero_label(tmp_path):
    # Own class names need BaseSegDataset: ADE20KDataset only accepts subsets of its 150 names.
    from mmengine.registry import DefaultScope
    from mmseg.datasets import BaseSegDataset
    classes = ('background', 'square', 'circle', 'triangle')
    make_ade20k_dataset(tmp_path, num_train=2, num_val=1, image_size=(64, 64), classes=classes)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = BaseSegDataset(
            data_root=str(tmp_path), metainfo=dict(classes=classes), reduce_zero_label=True,
            img_suffix='.jpg', seg_map_suffix='.png',
            data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', reduce_zero_label=True),
                      dict(type='PackSegInputs')])
        assert len(dataset) == 2
        gt = dataset[0]['data_samples'].gt_sem_seg.data
    values = set(gt.unique().tolist())
    # 0 ("other", the shape outlines) becomes 255 = ignored; k becomes k - 1.
    assert 255 in values and 0 in values and values - {255} <= set(range(len(classes)))


def test_generators_reject_unusable_sizes(tmp_path):
    with pytest.raises(ValueError, match='too small'):
        make_coco_dataset(tmp_path, image_size=(16, 64))
    with pytest.raises(ValueError, match='background class'):
        make_ade20k_dataset(tmp_path, classes=('only',))


def test_generation_is_deterministic(tmp_path):
    first = make_coco_dataset(tmp_path / 'a', num_train=2, num_val=1, seed=3)
    second = make_coco_dataset(tmp_path / 'b', num_train=2, num_val=1, seed=3)
    assert json.loads(first['train_ann'].read_text()) == json.loads(second['train_ann'].read_text())
