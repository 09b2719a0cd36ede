"""A small generated dataset in the real COCO panoptic layout, for tests and ``make demo-panoptic``.

COCO panoptic cannot be downloaded here, so mmdet's ``CocoPanopticDataset`` and ``CocoPanopticMetric`` are
exercised on files written exactly as COCO's are::

    annotations/panoptic_{train,val}2017.json     images, annotations (segments_info), categories (isthing)
    annotations/panoptic_{train,val}2017/*.png    segment ids as RGB (panopticapi's id2rgb)
    annotations/instances_{train,val}2017.json    the thing segments as COCO instances (CocoMetric's file)
    {train,val}2017/*.jpg

A scene is two "stuff" regions (sky above a tilted horizon, ground below, each its own noise colour) with
non-overlapping filled shapes on top (the "things": one colour and shape kind per class, as in
:mod:`pvt_det.datasets.synthetic`).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from .synthetic import SHAPE_CLASSES, _check_size, _draw_scene

STUFF_CLASSES = ('sky', 'ground')
# BGR noise ranges of the stuff regions: far from each other and from the shape colours.
_STUFF_NOISE = {'sky': ((150, 110, 60), (210, 160, 100)), 'ground': ((40, 90, 90), (80, 130, 130))}
# A segment's id in the PNG: category id * _ID_STRIDE + its index in the image (0 for stuff); COCO
# prescribes no scheme, only ids unique per image and below 256**3.
_ID_STRIDE = 1000


def require_panopticapi():
    """The ``panopticapi`` module, which mmdet's panoptic loading and metric import; one line if absent."""
    try:
        import panopticapi.utils
    except ImportError:
        raise ImportError('panoptic segmentation needs the panopticapi module (COCO\'s panoptic API): '
                          'run `make setup`, or `pip install --no-deps panopticapi-lite==0.2.0` '
                          '(docs/panoptic.md says why this package)') from None
    return panopticapi.utils


def panoptic_categories(thing_classes: tuple[str, ...] = SHAPE_CLASSES,
                        stuff_classes: tuple[str, ...] = STUFF_CLASSES) -> list[dict]:
    """COCO panoptic ``categories``: things first (ids 1..), then stuff, as COCO orders them and as
    mmdet's panoptic heads number their labels (label < num_things_classes is a thing)."""
    names = list(thing_classes) + list(stuff_classes)
    rng = np.random.default_rng(1)
    return [dict(id=index + 1, name=name, supercategory='shape' if index < len(thing_classes) else 'scene',
                 isthing=int(index < len(thing_classes)), color=[int(c) for c in rng.integers(0, 256, 3)])
            for index, name in enumerate(names)]


def _stuff_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Per pixel 0 (sky) or 1 (ground), split by a random tilted horizon through the middle band."""
    left, right = rng.uniform(0.35, 0.65, size=2) * height
    horizon = np.linspace(left, right, width)[None, :]
    return (np.arange(height)[:, None] >= horizon).astype(np.uint8)


def _scene(rng: np.random.Generator, height: int, width: int, num_things: int,
           max_objects: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
    """The BGR image, a map of 0 (sky) / 1 (ground) / 2 + k (k-th shape), and the shapes."""
    image, objects = _draw_scene(rng, height, width, num_things, max_objects)
    region = _stuff_background(rng, height, width) if STUFF_CLASSES else np.zeros((height, width), np.uint8)
    for index, (_label, polygon) in enumerate(objects):
        cv2.fillPoly(region, [np.round(polygon).astype(np.int32)], index + 2)
    for stuff_index, name in enumerate(STUFF_CLASSES):
        low, high = _STUFF_NOISE[name]
        where = region == stuff_index
        image[where] = rng.integers(low, high, size=(int(where.sum()), 3)).astype(np.uint8)
    return image, region, objects


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def make_coco_panoptic_dataset(root: str | Path, num_train: int = 16, num_val: int = 8,
                               image_size: tuple[int, int] = (128, 128),
                               thing_classes: tuple[str, ...] = SHAPE_CLASSES, max_objects: int = 3,
                               seed: int = 0) -> dict[str, Path]:
    """Write the COCO panoptic layout (see module doc) under ``root``, with the stuff classes
    :data:`STUFF_CLASSES` after ``thing_classes``.

    ``image_size`` is (height, width). Returns the paths ``{split}_panoptic_ann``,
    ``{split}_panoptic_seg`` (PNG folder), ``{split}_instances_ann`` and ``{split}_images`` for
    ``split`` in train, val.
    """
    id2rgb = require_panopticapi().id2rgb
    _check_size(image_size, len(thing_classes))
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = image_size
    categories = panoptic_categories(thing_classes)
    stuff_ids = [category['id'] for category in categories if not category['isthing']]
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for split, count in (('train', num_train), ('val', num_val)):
        image_dir = root / f'{split}2017'
        seg_dir = root / 'annotations' / f'panoptic_{split}2017'
        image_dir.mkdir(parents=True, exist_ok=True)
        seg_dir.mkdir(parents=True, exist_ok=True)
        images, panoptic_anns, instance_anns = [], [], []
        for index in range(count):
            image_id = index + 1
            image, region, objects = _scene(rng, height, width, len(thing_classes), max_objects)
            segment_ids = np.zeros((height, width), np.uint32)
            segments = []
            for stuff_index, category_id in enumerate(stuff_ids):
                segments.append((category_id * _ID_STRIDE, category_id, region == stuff_index))
            for shape_index, (label, _polygon) in enumerate(objects):
                segments.append(((label + 1) * _ID_STRIDE + shape_index + 1, label + 1,
                                 region == shape_index + 2))
            segments_info = []
            for segment_id, category_id, mask in segments:
                if not mask.any():  # a stuff region fully covered by shapes
                    continue
                segment_ids[mask] = segment_id
                segments_info.append(dict(id=segment_id, category_id=category_id, iscrowd=0,
                                          bbox=_bbox(mask), area=int(mask.sum())))
            stem = f'{image_id:012d}'
            cv2.imwrite(str(image_dir / f'{stem}.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(seg_dir / f'{stem}.png'), id2rgb(segment_ids)[..., ::-1])  # RGB; cv2 writes BGR
            images.append(dict(id=image_id, file_name=f'{stem}.jpg', height=height, width=width))
            panoptic_anns.append(dict(image_id=image_id, file_name=f'{stem}.png', segments_info=segments_info))
            for label, polygon in objects:
                mask = np.zeros((height, width), np.uint8)
                cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
                instance_anns.append(dict(
                    id=len(instance_anns) + 1, image_id=image_id, category_id=label + 1,
                    bbox=_bbox(mask > 0), area=float(mask.sum()), iscrowd=0,
                    segmentation=[np.round(polygon).reshape(-1).astype(float).tolist()]))
        panoptic_file = root / 'annotations' / f'panoptic_{split}2017.json'
        panoptic_file.write_text(json.dumps(dict(images=images, annotations=panoptic_anns,
                                                 categories=categories)))
        instances_file = root / 'annotations' / f'instances_{split}2017.json'
        instances_file.write_text(json.dumps(dict(
            images=images, annotations=instance_anns,
            categories=[category for category in categories if category['isthing']])))
        paths.update({f'{split}_panoptic_ann': panoptic_file, f'{split}_panoptic_seg': seg_dir,
                      f'{split}_instances_ann': instances_file, f'{split}_images': image_dir})
    return paths
