"""What is inside a dataset's files, checked before training or testing starts.

:func:`pvt_det.config.preflight.check_dataset_paths` makes sure the folders and files exist and
:func:`~pvt_det.config.preflight.check_config` that an annotation file is COCO JSON with the config's classes.
A dataset can pass both and still be unusable: no images, images that are not there or do not decode, files
that cannot be read, or (for training) no annotation the model can learn from -- mmdet then drops every image
and the run stops later on an empty sampler, or mid-epoch at the first missing image. Each case here is one
line naming the file or key and what to do.
"""
from __future__ import annotations

import inspect
import json
import os
import os.path as osp
from mmengine.config import Config

from ..cli import ToolError
from .loading import task_of
from .registries import registered_dataset_class
from .preflight import _FULL_PARSE_BYTES, _dataset_classes, _is_coco_dataset, _is_local, \
    _join, _leaf_datasets

_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def check_dataset_contents(cfg: Config, loaders: tuple[str, ...]) -> None:
    """Fail with one line when a dataloader's dataset has nothing usable in it (see module doc).

    Call it after :func:`~pvt_det.config.preflight.check_dataset_paths` and
    :func:`~pvt_det.config.preflight.check_config`, which report missing paths and malformed files."""
    task = task_of(cfg)
    for loader in loaders:
        loader_cfg = cfg.get(loader) or {}
        for key, dataset in _leaf_datasets(loader_cfg.get('dataset'), f'{loader}.dataset'):
            training = loader == 'train_dataloader'
            if _is_coco_dataset(task, dataset):
                _check_coco_contents(task, key, dataset, training)
            elif task == 'seg' and not dataset.get('ann_file'):
                _check_segmentation_folders(task, key, dataset, training)


def _readable(path: str, what: str) -> None:
    if not os.access(path, os.R_OK | (os.X_OK if osp.isdir(path) else 0)):
        raise ToolError(f'cannot read {what} {path}: permission denied. Give this user read access '
                        f'(e.g. chmod -R a+rX {path})')


def _check_decodes(path: str, key: str) -> None:
    """The first image (or map) is a picture mmcv can decode: a wrong suffix or a broken copy shows at once."""
    import mmcv
    _readable(path, 'image')
    try:
        image = mmcv.imread(path)
    except Exception:  # noqa: BLE001 - whatever the decoder says, the file is not an image
        image = None
    if image is None or image.size == 0:
        raise ToolError(f'cannot decode {path} ({key}): not an image file (empty, truncated or another '
                        'format). Replace it with a JPEG/PNG image or remove it from the dataset')


# ---------------------------------------------------------------------------------------------------- COCO
def _check_coco_contents(task: str, key: str, dataset: dict, training: bool) -> None:
    ann_file = dataset.get('ann_file')
    if not ann_file:
        return
    path = _join(dataset.get('data_root'), ann_file)
    if not _is_local(path) or not osp.isfile(path):
        return
    _readable(path, 'annotation file')
    if osp.getsize(path) > _FULL_PARSE_BYTES:
        return  # COCO-sized files: check_config sniffed the format; parsing 450 MB here would double start-up
    with open(path, encoding='utf-8-sig') as file:
        content = json.load(file)
    images = [image for image in content.get('images') or [] if isinstance(image, dict)]
    if not images:
        raise ToolError(f'dataset is empty: {path} ({key}.ann_file) lists no images. Add the images and '
                        f'their annotations to it, or point {key}.ann_file at a file that has them')
    folder = _join(dataset.get('data_root'), (dataset.get('data_prefix') or {}).get('img') or '')
    if _is_local(folder):
        _check_listed_images(images, folder, path, key)
    if training and _is_instances_file(task, dataset):
        _check_usable_boxes(task, key, dataset, content, images, path)


def _check_listed_images(images: list[dict], folder: str, ann_path: str, key: str) -> None:
    missing = [image.get('file_name') for image in images
               if not osp.isfile(osp.join(folder, str(image.get('file_name'))))]
    if len(missing) == len(images):
        raise ToolError(f'none of the {len(images)} images listed in {ann_path} is in {folder} '
                        f'({key}.data_prefix.img), e.g. {missing[0]!r}. Point {key}.data_prefix.img at the '
                        'folder that holds them (file_name is relative to it)')
    if missing:
        raise ToolError(f'{len(missing)} of the {len(images)} images listed in {ann_path} are not in {folder} '
                        f'({key}.data_prefix.img), e.g. {missing[0]!r}; the run would stop at the first. Put '
                        'them there or remove their entries (and annotations) from the file')
    _check_decodes(osp.join(folder, str(images[0].get('file_name'))), f'{key}, first image of {ann_path}')


def _is_instances_file(task: str, dataset: dict) -> bool:
    # CocoPanopticDataset reads the same JSON shape with segments_info instead of boxes.
    from mmdet.datasets import CocoPanopticDataset
    dataset_class = registered_dataset_class(task, dataset)
    return not (isinstance(dataset_class, type) and issubclass(dataset_class, CocoPanopticDataset))


def _check_usable_boxes(task: str, key: str, dataset: dict, content: dict, images: list[dict],
                        ann_path: str) -> None:
    """mmdet's CocoDataset trains on images with at least one box of a class it knows (``filter_empty_gt``)
    and at least ``min_size`` px on each side; with none left, training cannot start."""
    filter_cfg = dataset.get('filter_cfg') or {}
    if not filter_cfg.get('filter_empty_gt', False):
        return
    known = _dataset_classes(task, key, dataset)
    if known is None:
        return
    classes, source = known
    category_ids = {category.get('id') for category in content.get('categories') or []
                    if isinstance(category, dict) and category.get('name') in classes}
    min_size = filter_cfg.get('min_size', 0) or 0
    large_enough = {image.get('id') for image in images
                    if min(image.get('width') or 0, image.get('height') or 0) >= min_size}
    annotations = [annotation for annotation in content.get('annotations') or [] if isinstance(annotation, dict)]
    if annotations and all(isinstance(annotation.get('segments_info'), list) for annotation in annotations):
        # COCO panoptic files hold one annotation per image, with its segments' boxes in segments_info.
        annotations = [dict(segment, image_id=annotation.get('image_id')) for annotation in annotations
                       for segment in annotation['segments_info'] if isinstance(segment, dict)]
    usable = [annotation for annotation in annotations if _is_usable_box(annotation, category_ids)]
    if not any(annotation.get('image_id') in large_enough for annotation in usable):
        why = (f'none of its {len(annotations)} annotations is a box (bbox [x, y, w, h] with w, h >= 1, '
               f'iscrowd 0) of a class in {source} ({", ".join(map(str, classes[:5]))}'
               f'{", ..." if len(classes) > 5 else ""})') if not usable else (
               f'the images with boxes are smaller than {key}.filter_cfg.min_size={min_size} px')
        raise ToolError(f'no usable annotation in {ann_path} ({key}.ann_file): {why}, so mmdet would drop '
                        'every image and there is nothing to train on. Annotate the images with boxes of '
                        'those classes (COCO: annotations with image_id, category_id, bbox)')


def _is_usable_box(annotation: dict, category_ids: set) -> bool:
    bbox = annotation.get('bbox')
    if annotation.get('iscrowd') or annotation.get('category_id') not in category_ids:
        return False
    return isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(
        isinstance(value, (int, float)) for value in bbox) and bbox[2] >= 1 and bbox[3] >= 1


# ---------------------------------------------------------------------------------------------- segmentation
def _suffix(task: str, dataset: dict, name: str, fallback: str) -> str:
    if isinstance(dataset.get(name), str):
        return dataset[name]
    dataset_class = registered_dataset_class(task, dataset)
    try:
        default = inspect.signature(dataset_class).parameters[name].default
    except (TypeError, ValueError, KeyError):
        return fallback
    return default if isinstance(default, str) else fallback


def _files_with_suffix(folder: str, suffix: str) -> list[str]:
    # mmseg lists the folder recursively and keeps the files ending in the suffix, sorted.
    found = [osp.relpath(osp.join(root, name), folder) for root, _dirs, names in os.walk(folder)
             for name in names if name.endswith(suffix)]
    return sorted(found)


def _check_segmentation_folders(task: str, key: str, dataset: dict, training: bool) -> None:
    prefix = dataset.get('data_prefix') or {}
    images_dir = _join(dataset.get('data_root'), prefix.get('img_path') or '')
    map_key = 'depth_map_path' if 'depth_map_path' in prefix else 'seg_map_path'  # NYUDataset: depth maps
    maps_dir = _join(dataset.get('data_root'), prefix.get(map_key) or '')
    if not _is_local(images_dir) or not osp.isdir(images_dir):
        return
    _readable(images_dir, 'image folder')
    img_suffix = _suffix(task, dataset, 'img_suffix', '.jpg')
    images = _files_with_suffix(images_dir, img_suffix)
    if not images:
        others = sorted({osp.splitext(name)[1] for name in _files_with_suffix(images_dir, '')} & set(_IMAGE_SUFFIXES))
        found = f' (it has {", ".join(others)} files: set {key}.img_suffix)' if others else ''
        raise ToolError(f'dataset is empty: no *{img_suffix} image in {images_dir} ({key}.data_prefix.img_path)'
                        f'{found}. Put the images there or point {key}.data_prefix.img_path at them')
    _check_decodes(osp.join(images_dir, images[0]), f'{key}.data_prefix.img_path')
    if not prefix.get('seg_map_path') or not _is_local(maps_dir) or not osp.isdir(maps_dir):
        return  # label maps next to the images, or another kind of target (depth maps): left to the dataset
    map_suffix = _suffix(task, dataset, map_key.replace('_path', '_suffix'), '.png')
    maps = [name[:-len(img_suffix)] + map_suffix for name in images]  # as mmseg's BaseSegDataset names them
    missing = [name for name in maps if not osp.isfile(osp.join(maps_dir, name))]
    if len(missing) == len(maps):
        raise ToolError(f'no usable annotation: none of the {len(images)} images in {images_dir} has its label '
                        f'map in {maps_dir} ({key}.data_prefix.{map_key}), e.g. {missing[0]!r} for '
                        f'{images[0]!r}. Each image <name>{img_suffix} needs <name>{map_suffix} there')
    if missing and training:
        raise ToolError(f'{len(missing)} of the {len(images)} images in {images_dir} have no label map in '
                        f'{maps_dir} ({key}.data_prefix.{map_key}), e.g. {missing[0]!r}; training would '
                        'stop at the first. Add the maps or move those images out')
    _check_decodes(osp.join(maps_dir, maps[0]), f'{key}.data_prefix.{map_key}')

