"""Small generated datasets in the real COCO and ADE20K layouts, for tests and demos.

COCO and ADE20K cannot be downloaded here, so the loaders are exercised on data written
to disk in exactly the layout the real datasets use.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

SHAPE_CLASSES = ('square', 'circle', 'triangle')
# One distinct colour per class (BGR, as cv2 writes) keeps the task learnable in a few hundred iterations.
_CLASS_COLORS = ((40, 40, 220), (40, 200, 40), (220, 80, 40), (200, 40, 200), (40, 200, 200))


def _shape_polygon(kind: str, cx: float, cy: float, radius: float) -> np.ndarray:
    if kind == 'square':
        angles = np.deg2rad([45, 135, 225, 315])
    elif kind == 'triangle':
        angles = np.deg2rad([-90, 30, 150])
    else:  # circle, as a 24-gon so the polygon annotation matches the drawn mask
        angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)


def _draw_scene(rng: np.random.Generator, height: int, width: int, classes: tuple[str, ...],
                max_objects: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Noise background with up to ``max_objects`` filled shapes; returns image and (class, polygon)."""
    image = rng.integers(60, 140, size=(height, width, 3), dtype=np.uint8)
    objects = []
    for _ in range(rng.integers(1, max_objects + 1)):
        label = int(rng.integers(len(classes)))
        radius = float(rng.uniform(0.12, 0.25) * min(height, width))
        cx = float(rng.uniform(radius, width - radius))
        cy = float(rng.uniform(radius, height - radius))
        polygon = _shape_polygon(classes[label], cx, cy, radius)
        cv2.fillPoly(image, [np.round(polygon).astype(np.int32)], _CLASS_COLORS[label % len(_CLASS_COLORS)])
        objects.append((label, polygon))
    return image, objects


def make_coco_dataset(root: str | Path, num_train: int = 16, num_val: int = 8,
                      image_size: tuple[int, int] = (128, 128),
                      classes: tuple[str, ...] = SHAPE_CLASSES, max_objects: int = 3,
                      seed: int = 0) -> dict[str, Path]:
    """Write a COCO-format dataset: ``annotations/instances_{train,val}2017.json`` and
    ``{train,val}2017/*.jpg`` under ``root``, with boxes and polygon masks.

    Returns the paths of the annotation files and image folders.
    """
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
            image, objects = _draw_scene(rng, height, width, classes, max_objects)
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
