"""Small generated datasets in the real COCO and ADE20K layouts, for tests and demos.

COCO and ADE20K cannot be downloaded here, so the loaders are exercised on data written
to disk in exactly the layout the real datasets use: filled shapes (one colour per class)
on a noise background.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

SHAPE_CLASSES = ('square', 'circle', 'triangle')
# One distinct colour per class (BGR, as cv2 writes) keeps the task learnable in a few hundred iterations.
_CLASS_COLORS = ((40, 40, 220), (40, 200, 40), (220, 80, 40), (200, 40, 200), (40, 200, 200),
                 (230, 230, 230), (20, 20, 20), (0, 140, 255))
_SHAPE_KINDS = ('square', 'circle', 'triangle')
_MIN_SIDE = 32


def _shape_polygon(kind: str, cx: float, cy: float, radius: float) -> np.ndarray:
    if kind == 'square':
        angles = np.deg2rad([45, 135, 225, 315])
    elif kind == 'triangle':
        angles = np.deg2rad([-90, 30, 150])
    else:  # circle, as a 24-gon so the polygon annotation matches the drawn mask
        angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)


def _check_size(image_size: tuple[int, int], num_classes: int) -> None:
    if min(image_size) < _MIN_SIDE:
        raise ValueError(f'image_size={image_size} is too small to draw shapes in; '
                         f'use at least {_MIN_SIDE} pixels per side')
    if num_classes < 1:
        raise ValueError('need at least one class name')


def _draw_scene(rng: np.random.Generator, height: int, width: int, num_classes: int,
                max_objects: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Noise background with 1..``max_objects`` filled, non-overlapping shapes.

    Returns the BGR image and (class index, polygon) per shape. Shapes never overlap, so every
    polygon annotation is exactly the visible object (no occlusion to reconcile). Class ``k``
    is drawn as shape kind ``k % 3`` in colour ``k``.
    """
    image = rng.integers(60, 140, size=(height, width, 3), dtype=np.uint8)
    objects: list[tuple[int, np.ndarray]] = []
    boxes: list[tuple[float, float, float, float]] = []
    wanted = int(rng.integers(1, max_objects + 1))
    for _ in range(50 * wanted):  # rejection sampling for free space
        if len(objects) == wanted:
            break
        label = int(rng.integers(num_classes))
        radius = float(rng.uniform(0.12, 0.25) * min(height, width))
        cx = float(rng.uniform(radius, width - radius))
        cy = float(rng.uniform(radius, height - radius))
        box = (cx - radius - 2, cy - radius - 2, cx + radius + 2, cy + radius + 2)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
            continue
        polygon = _shape_polygon(_SHAPE_KINDS[label % 3], cx, cy, radius)
        cv2.fillPoly(image, [np.round(polygon).astype(np.int32)],
                     _CLASS_COLORS[label % len(_CLASS_COLORS)])
        objects.append((label, polygon))
        boxes.append(box)
    return image, objects


def make_coco_dataset(root: str | Path, num_train: int = 16, num_val: int = 8,
                      image_size: tuple[int, int] = (128, 128),
                      classes: tuple[str, ...] = SHAPE_CLASSES, max_objects: int = 3,
                      seed: int = 0) -> dict[str, Path]:
    """Write a COCO-format dataset: ``annotations/instances_{train,val}2017.json`` and
    ``{train,val}2017/*.jpg`` under ``root``, with boxes and polygon masks.

    ``image_size`` is (height, width). Returns the paths of the annotation files
    (``train_ann``, ``val_ann``) and image folders (``train_images``, ``val_images``).
    """
    _check_size(image_size, len(classes))
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = image_size
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(classes)]
    paths: dict[str, Path] = {}
    for split, count in (('train', num_train), ('val', num_val)):
        image_dir = root / f'{split}2017'
        image_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            image_id = index + 1
            image, objects = _draw_scene(rng, height, width, len(classes), max_objects)
            file_name = f'{image_id:012d}.jpg'
            cv2.imwrite(str(image_dir / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
            for label, polygon in objects:
                x0, y0 = polygon.min(0)
                x1, y1 = polygon.max(0)
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                    bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    area=float(cv2.contourArea(polygon.astype(np.float32))),
                    segmentation=[polygon.reshape(-1).round(2).tolist()], iscrowd=0))
        ann_file = root / 'annotations' / f'instances_{split}2017.json'
        ann_file.write_text(json.dumps(dict(images=images, annotations=annotations,
                                            categories=categories)))
        paths[f'{split}_ann'] = ann_file
        paths[f'{split}_images'] = image_dir
    return paths


def make_ade20k_dataset(root: str | Path, num_train: int = 16, num_val: int = 8,
                        image_size: tuple[int, int] = (128, 128),
                        classes: tuple[str, ...] = ('background',) + SHAPE_CLASSES,
                        max_objects: int = 3, seed: int = 0) -> dict[str, Path]:
    """Write an ADE20K-layout semantic segmentation dataset under ``root``:
    ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png``.

    Annotation PNGs hold 0 for "other" (ignored by mmseg's ``reduce_zero_label=True``) and
    ``k + 1`` for ``classes[k]``, as ADE20K does. ``classes[0]`` labels the noise background;
    the others are shapes, each outlined by a 1-pixel ring of label 0 (ADE20K leaves many object
    boundaries unlabelled too). Returns the four folder paths (``train_images``,
    ``train_annotations``, ``val_images``, ``val_annotations``).
    """
    if len(classes) < 2:
        raise ValueError(f'classes={classes!r}: need a background class and at least one shape class')
    _check_size(image_size, len(classes))
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = image_size
    paths: dict[str, Path] = {}
    for split, folder, count in (('train', 'training', num_train), ('val', 'validation', num_val)):
        image_dir = root / 'images' / folder
        label_dir = root / 'annotations' / folder
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, objects = _draw_scene(rng, height, width, len(classes) - 1, max_objects)
            label_map = np.full((height, width), 1, dtype=np.uint8)  # background = classes[0]
            for shape_index, polygon in objects:
                points = [np.round(polygon).astype(np.int32)]
                cv2.fillPoly(label_map, points, shape_index + 2)
                cv2.polylines(label_map, points, isClosed=True, color=0, thickness=1)
            stem = f'ADE_{split}_{index + 1:08d}'
            cv2.imwrite(str(image_dir / f'{stem}.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(label_dir / f'{stem}.png'), label_map)
        paths[f'{split}_images'] = image_dir
        paths[f'{split}_annotations'] = label_dir
    return paths
