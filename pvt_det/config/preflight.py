"""Checks that run once a config is loaded, before any data is read or a step is taken: a mistake in a
config or a path stops the tool with one line naming the config key or file and the fix.

Two entry points, both called by tools/train.py and tools/test.py:

* :func:`check_dataset_paths` — data roots, annotation files and image folders exist;
* :func:`check_config` — the config agrees with itself and with its files: the heads' class counts with the
  dataset's classes, the neck with the backbone's output widths, anchor/RoI/decode-head strides and inputs
  with the neck's outputs, annotation files parse as what the dataset reads, checkpoint paths exist.

Each check of :func:`check_config` has a name (:data:`CONFIG_CHECKS`); a config where a mismatch is intended
skips it with ``preflight = dict(skip=['num_classes'])``
(or ``--cfg-options "preflight.skip=[num_classes]"``).
The backbone is built on the ``meta`` device (no memory, no weights) to read its output widths and strides;
a backbone that cannot be built there skips the checks that need it.
"""
from __future__ import annotations

import json
import os.path as osp
import re
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from mmengine.config import Config

from ..cli import ToolError
from .loading import task_of

_LAYOUT_HINT = {
    'det': 'COCO layout: <data_root>/annotations/instances_{train,val}2017.json and '
           '<data_root>/{train,val}2017/*.jpg (docs/get_started.md)',
    'seg': 'ADE20K layout: <data_root>/images/{training,validation}/*.jpg and '
           '<data_root>/annotations/{training,validation}/*.png (docs/segmentation.md)',
}

# The names `preflight.skip` accepts, with what each one compares (docs/reliability.md lists the same).
CONFIG_CHECKS = {
    'batch_size': 'every dataloader: batch_size >= 1, num_workers >= 0',
    'mask_annotations': "a model with a mask head trains on a pipeline that loads masks",
    'checkpoint_paths': 'load_from and every init_cfg checkpoint that is a local path exist',
    'ann_file': 'COCO annotation files are COCO JSON (images, annotations, categories)',
    'ann_classes': "the dataset's classes are categories of its COCO file, in the file's order",
    'num_classes': "every num_classes in the model equals the dataset's number of classes",
    'evaluator_ann_file': "the evaluator's ann_file is the evaluated dataset's ann_file",
    'mean_std': "data_preprocessor mean/std have one value per input channel of the backbone",
    'neck_in_channels': "the neck's in_channels equal the backbone's output widths",
    'strides': "anchor, RoI-extractor and decode-head strides equal the neck's output strides",
    'head_inputs': "the heads' in_channels/in_index match the maps the neck (or backbone) gives them",
}
# COCO train2017's instances file is 450 MB: parsing it whole here would double the start-up time.
_FULL_PARSE_BYTES = 64 * 2**20
_TAIL_BYTES = 4 * 2**20


# ============================================================================================ paths
def innermost_dataset(dataset: dict) -> dict:
    # Wrappers (RepeatDataset, ClassBalancedDataset, ...) hold the real dataset under `dataset`.
    while isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset


def _is_local(path: str) -> bool:
    return '://' not in path


def _join(root: str | None, path: str) -> str:
    return path if (not root or osp.isabs(path)) else osp.join(root, path)


def check_dataset_paths(cfg: Config, loaders: tuple[str, ...]) -> None:
    """Fail with the path to fix when a dataloader's files are missing (local paths only)."""
    hint = _LAYOUT_HINT[task_of(cfg)]
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        for key, dataset in _leaf_datasets(loader_cfg.dataset, f'{loader}.dataset'):
            _check_one_dataset_paths(dataset, key, hint)
    for evaluator, split in _evaluated_splits(loaders):
        for _key, metric in _metrics(cfg, evaluator):
            ann_file = metric.get('ann_file')
            if ann_file and _is_local(ann_file) and not osp.isfile(ann_file):
                raise ToolError(f'evaluation annotation file not found: {ann_file} '
                                f'({evaluator}.ann_file). Set it to the same file as '
                                f'{split}.dataset.ann_file (with its data_root)')


def _check_one_dataset_paths(dataset: dict, key: str, hint: str) -> None:
    data_root = dataset.get('data_root')
    if data_root and _is_local(data_root) and not osp.isdir(data_root):
        raise ToolError(f'dataset not found: data_root {data_root!r} ({key}.data_root) does not '
                        f'exist. Put the data there ({hint}) or point the config at yours, '
                        f'e.g. --cfg-options {key}.data_root=path/to/data')
    ann_file = dataset.get('ann_file')
    if ann_file:
        path = _join(data_root, ann_file)
        if _is_local(path) and not osp.isfile(path):
            raise ToolError(f'dataset annotation file not found: {path} ({key}.ann_file). '
                            f'Expected {hint}; or set {key}.ann_file')
    for name, prefix in (dataset.get('data_prefix') or {}).items():
        path = _join(data_root, prefix)
        if prefix and _is_local(path) and not osp.isdir(path):
            raise ToolError(f'dataset folder not found: {path} ({key}.data_prefix.{name}). '
                            f'Expected {hint}; or set {key}.data_prefix')


def check_checkpoint(path: str, what: str = 'checkpoint') -> None:
    if _is_local(path) and not osp.isfile(path):
        raise ToolError(f'{what} not found: {path}. Pass a .pth file that tools/train.py wrote, '
                        'e.g. work_dirs/<config name>/epoch_12.pth')


def _leaf_datasets(dataset: Any, key: str) -> Iterator[tuple[str, dict]]:
    """The datasets that read files, with their config keys, through wrappers (``dataset``) and
    ``ConcatDataset`` (``datasets``)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('dataset'), dict):
        yield from _leaf_datasets(dataset['dataset'], f'{key}.dataset')
    elif isinstance(dataset.get('datasets'), (list, tuple)):
        for index, child in enumerate(dataset['datasets']):
            yield from _leaf_datasets(child, f'{key}.datasets[{index}]')
    else:
        yield key, dataset


def _evaluated_splits(loaders: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for evaluator, split in (('val_evaluator', 'val_dataloader'), ('test_evaluator', 'test_dataloader')):
        if split in loaders:
            yield evaluator, split


def _metrics(cfg: Config, evaluator: str) -> Iterator[tuple[str, dict]]:
    metrics = cfg.get(evaluator)
    if isinstance(metrics, dict) and isinstance(metrics.get('metrics'), (list, tuple)):
        # dict(type='Evaluator', metrics=[...])
        metrics, evaluator = metrics['metrics'], f'{evaluator}.metrics'
    if isinstance(metrics, dict):
        yield evaluator, metrics
    elif isinstance(metrics, (list, tuple)):
        for index, metric in enumerate(metrics):
            if isinstance(metric, dict):
                yield f'{evaluator}[{index}]', metric


# ============================================================================================ the config
class _Checks:
    """Raises a check's one line, unless the config skips it (``preflight.skip``)."""

    def __init__(self, cfg: Config) -> None:
        skip = (cfg.get('preflight') or {}).get('skip') or []
        skip = [skip] if isinstance(skip, str) else list(skip)
        unknown = [name for name in skip if name not in CONFIG_CHECKS]
        if unknown:
            raise ToolError(f'preflight.skip names unknown check(s) {unknown}; the checks are: '
                            f'{", ".join(CONFIG_CHECKS)} (docs/reliability.md)')
        self.skip = set(skip)

    def wanted(self, name: str) -> bool:
        return name not in self.skip

    def fail(self, name: str, message: str) -> None:
        raise ToolError(f"{message} [check '{name}'; if this is intended, add "
                        f"preflight = dict(skip=['{name}']) to the config]")


def check_config(cfg: Config, loaders: tuple[str, ...]) -> None:
    """Check the loaded config against itself and its files before anything is built (see module doc).

    ``loaders`` are the dataloaders the tool will run (``train_dataloader``, ``val_dataloader``,
    ``test_dataloader``); call :func:`check_dataset_paths` first, so that the files exist.
    """
    checks = _Checks(cfg)
    task = task_of(cfg)
    datasets = [(key, dataset) for loader in loaders if (cfg.get(loader) or {}).get('dataset')
                for key, dataset in _leaf_datasets(cfg[loader]['dataset'], f'{loader}.dataset')]
    if checks.wanted('batch_size'):
        _check_loader_sizes(cfg, loaders, checks)
    if checks.wanted('checkpoint_paths'):
        _check_checkpoint_paths(cfg, checks)
    for key, dataset in datasets:
        _check_annotation_file(task, key, dataset, checks)
    if checks.wanted('num_classes'):
        _check_num_classes(cfg, task, datasets, checks)
    if checks.wanted('evaluator_ann_file'):
        _check_evaluator_ann_files(cfg, loaders, checks)
    if checks.wanted('mask_annotations') and task == 'det':
        _check_mask_annotations(cfg, loaders, checks)
    _check_model_shapes(cfg, task, checks)


def _model_cfg(cfg: Config) -> dict:
    model = cfg.get('model') or {}
    # tools/test.py --tta wraps the detector: DetTTAModel / SegTTAModel(module=<the model>).
    while isinstance(model.get('module'), dict) and 'backbone' not in model:
        model = model['module']
    return model


# -------------------------------------------------------------------------------------- loaders
def _check_loader_sizes(cfg: Config, loaders: tuple[str, ...], checks: _Checks) -> None:
    for loader in loaders:
        loader_cfg = cfg.get(loader) or {}
        batch_size = loader_cfg.get('batch_size')
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            checks.fail('batch_size', f'{loader}.batch_size={batch_size!r}: the images per process of '
                        f'a step must be an int >= 1, e.g. --cfg-options {loader}.batch_size=2')
        workers = loader_cfg.get('num_workers')
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            checks.fail('batch_size', f'{loader}.num_workers={workers!r}: use an int >= 0 '
                        f'(0 reads the data in the main process)')


def _check_checkpoint_paths(cfg: Config, checks: _Checks) -> None:
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and _is_local(load_from) and not osp.isfile(osp.expanduser(load_from)):
        checks.fail('checkpoint_paths', f'checkpoint to start from not found: {load_from} (load_from). '
                    'Put the file there, point load_from at it, or set load_from=None to start from '
                    "the backbone's pretrained weights")
    for key, checkpoint in _pretrained_checkpoints(_model_cfg(cfg), 'model'):
        if _is_local(checkpoint) and not osp.isfile(osp.expanduser(checkpoint)):
            owner = key.rsplit('.init_cfg', 1)[0]
            checks.fail('checkpoint_paths', f'pretrained weights not found: {checkpoint} ({key}). Put '
                        f'the file there, point {key} at it, or train from scratch with '
                        f'--cfg-options {owner}.init_cfg=None')


def _pretrained_checkpoints(node: Any, key: str) -> Iterator[tuple[str, str]]:
    """``(config key, path)`` of every ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and
    ``pretrained=``."""
    if isinstance(node, dict):
        if isinstance(node.get('pretrained'), str):
            yield f'{key}.pretrained', node['pretrained']
        for name, value in node.items():
            child = f'{key}.{name}'
            if name == 'init_cfg':
                for index, init in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                    init_key = child if isinstance(value, dict) else f'{child}[{index}]'
                    if isinstance(init, dict) and init.get('type') == 'Pretrained' and \
                            isinstance(init.get('checkpoint'), str):
                        yield f'{init_key}.checkpoint', init['checkpoint']
            else:
                yield from _pretrained_checkpoints(value, child)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _pretrained_checkpoints(value, f'{key}[{index}]')


def _check_evaluator_ann_files(cfg: Config, loaders: tuple[str, ...], checks: _Checks) -> None:
    """A CocoMetric given another file than its dataset's would score the predictions against other
    ground truth."""
    for evaluator, split in _evaluated_splits(loaders):
        leaves = list(_leaf_datasets((cfg.get(split) or {}).get('dataset'), f'{split}.dataset'))
        if len(leaves) != 1 or not leaves[0][1].get('ann_file'):
            continue
        key, dataset = leaves[0]
        dataset_file = _join(dataset.get('data_root'), dataset['ann_file'])
        for metric_key, metric in _metrics(cfg, evaluator):
            ann_file = metric.get('ann_file')
            if ann_file and _is_local(ann_file) and _is_local(dataset_file) and \
                    osp.realpath(ann_file) != osp.realpath(dataset_file):
                checks.fail('evaluator_ann_file',
                            f'{metric_key}.ann_file={ann_file!r} is not the file {key} reads '
                            f'({dataset_file}): the predictions would be scored against other ground '
                            f'truth. Set {metric_key}.ann_file={dataset_file!r}')


def _check_mask_annotations(cfg: Config, loaders: tuple[str, ...], checks: _Checks) -> None:
    """Mask R-CNN's mask loss needs ``gt_masks``; without them the first step fails deep in mmdet."""
    model = _model_cfg(cfg)
    mask_heads = [key for key, node in _walk(model, 'model', skip=('backbone', 'train_cfg', 'test_cfg'))
                  if re.search(r'\.mask_head(\[\d+\])?$', key) and node]
    if not mask_heads or 'train_dataloader' not in loaders:
        return
    train_dataset = (cfg.get('train_dataloader') or {}).get('dataset')
    for key, dataset in _leaf_datasets(train_dataset, 'train_dataloader.dataset'):
        for index, step in enumerate(dataset.get('pipeline') or []):
            if isinstance(step, dict) and str(step.get('type', '')).endswith('LoadAnnotations') and \
                    not step.get('with_mask', False):
                checks.fail('mask_annotations',
                            f'{mask_heads[0]} learns from masks but {key}.pipeline[{index}] is '
                            f'LoadAnnotations without with_mask=True: set with_mask=True there (the annotations need '
                            f'segmentation polygons or RLE), or inherit a retinanet_* config for boxes only')


# -------------------------------------------------------------------------------------- datasets
def _registry(task: str, kind: str):
    if task == 'det':
        from mmdet import registry
    else:
        from mmseg import registry
    return getattr(registry, kind)


def _dataset_class(task: str, dataset: dict) -> type | None:
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, type):
        return dataset_type
    if not isinstance(dataset_type, str):
        return None
    try:
        return _registry(task, 'DATASETS').get(dataset_type)
    except KeyError:  # e.g. a scope that is not imported: the runner will say so when it builds it
        return None


def _dataset_classes(task: str, key: str, dataset: dict) -> tuple[tuple[str, ...], str] | None:
    """The classes the dataset will use and where they come from: ``metainfo.classes`` in the config
    (as mmengine's BaseDataset reads it, a file path holds one name per line), else the dataset class's
    ``METAINFO`` (CocoDataset: COCO's 80, ADE20KDataset: ADE20K's 150), read without building it."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    source = f'{key}.metainfo.classes'
    if classes is None:
        dataset_class = _dataset_class(task, dataset)
        classes = getattr(dataset_class, 'METAINFO', {}).get('classes')
        source = f"{dataset.get('type')}'s default classes ({key} sets no metainfo.classes)"
    if classes is None:
        return None
    if isinstance(classes, str):
        if osp.isfile(classes):
            with open(classes, encoding='utf-8') as file:
                return tuple(line.strip() for line in file if line.strip()), source
        classes = (classes,)
    return tuple(classes), source


def _is_coco_dataset(task: str, dataset: dict) -> bool:
    if task != 'det':
        return False
    from mmdet.datasets import CocoDataset
    dataset_class = _dataset_class(task, dataset)
    return isinstance(dataset_class, type) and issubclass(dataset_class, CocoDataset)


def _check_annotation_file(task: str, key: str, dataset: dict, checks: _Checks) -> None:
    ann_file = dataset.get('ann_file')
    if not ann_file or not _is_coco_dataset(task, dataset):
        return
    path = _join(dataset.get('data_root'), ann_file)
    if not _is_local(path) or not osp.isfile(path):
        return
    categories = None
    if checks.wanted('ann_file'):
        categories = _coco_categories(path, f'{key}.ann_file', dataset.get('type'),
                                      need_annotations=not dataset.get('test_mode', False))
    if not checks.wanted('ann_classes'):
        return
    if categories is None:
        try:
            categories = _coco_categories(path, f'{key}.ann_file', dataset.get('type'), False)
        except ToolError:
            return  # ann_file is skipped: leave the file to the dataset
    known = _dataset_classes(task, key, dataset)
    if categories is None or known is None:
        return
    classes, source = known
    names = [str(category.get('name')) for category in categories if isinstance(category, dict)]
    missing = [name for name in classes if name not in names]
    if missing:
        listed = ', '.join(map(repr, missing[:5]))
        listed += f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        checks.fail('ann_classes',
                    f'{len(missing)} of the {len(classes)} classes ({source}) are not categories of {path}: '
                    f'{listed}; the file has {len(names)}: {_short(names)}. Set {key}.metainfo.classes to '
                    f'the category names of the file (in its order) and the heads\' num_classes to their '
                    f'count')
    used = [name for name in names if name in classes]
    if used != list(classes):
        # CocoDataset numbers the labels in the file's category order, whatever order `classes` has:
        # a reordered tuple would draw and evaluate every class under another class's name.
        fix = f'={tuple(used)!r}' if len(used) <= 10 else " to the file's category names in its order"
        checks.fail('ann_classes',
                    f'{source} lists the classes in another order than the categories of {path} '
                    f'({_short(used)}); CocoDataset numbers labels in the file\'s order, so each label '
                    f'would get another class\'s name. Set {key}.metainfo.classes{fix}')


def _short(names: list[str] | tuple[str, ...], limit: int = 10) -> str:
    text = ', '.join(names[:limit])
    return text + (f', ... ({len(names)} in all)' if len(names) > limit else '')


def _coco_categories(path: str, key: str, dataset_type: Any, need_annotations: bool) -> list | None:
    """The ``categories`` of a COCO JSON file, or a one-line ToolError saying why it is not one.

    A file larger than ``_FULL_PARSE_BYTES`` is only sniffed (its start is a JSON object in UTF-8) and its
    categories, which COCO files write last, are read from its tail; ``None`` when they are not there.
    """
    fix = (f'{dataset_type} reads COCO instances JSON (an object with images, annotations and categories): '
           f'point {key} at such a file or convert yours to it')
    size = osp.getsize(path)
    with open(path, 'rb') as file:
        head = file.read(min(size, _FULL_PARSE_BYTES + 1))
    if size > _FULL_PARSE_BYTES:
        _check_utf8_object(head[:2**20], path, key, fix, truncated=True)
        return _categories_from_tail(path, size)
    text = _check_utf8_object(head, path, key, fix, truncated=False)
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise ToolError(f'{path} ({key}) is not valid JSON: {error.msg} at line {error.lineno} column '
                        f'{error.colno}. {fix}') from None
    required = ('images', 'annotations', 'categories') if need_annotations else ('images', 'categories')
    missing = [name for name in required if not isinstance(content.get(name), list)]
    if missing:
        raise ToolError(f'{path} ({key}) is JSON but not COCO: no list {", ".join(map(repr, missing))} '
                        f'(its keys: {", ".join(map(str, list(content)[:8])) or "none"}). {fix}')
    return content['categories']


def _check_utf8_object(data: bytes, path: str, key: str, fix: str, truncated: bool) -> str:
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as error:
        if not (truncated and error.start >= len(data) - 3):  # a character cut by the sniff window
            raise ToolError(f'{path} ({key}) is not a text file (byte 0x{data[error.start]:02x} at offset '
                            f'{error.start} is not UTF-8: an image, archive or pickle?). {fix}') from None
        text = data[:error.start].decode('utf-8-sig')
    if not text.lstrip().startswith('{'):
        start = text.lstrip()[:20]
        raise ToolError(f'{path} ({key}) does not hold a JSON object (it starts with {start!r}). {fix}')
    return text


def _categories_from_tail(path: str, size: int) -> list | None:
    with open(path, 'rb') as file:
        file.seek(max(0, size - _TAIL_BYTES))
        tail = file.read().decode('utf-8', errors='replace')
    start = tail.rfind('"categories"')
    if start < 0:
        return None
    start = tail.find('[', start)
    try:
        categories, _ = json.JSONDecoder().raw_decode(tail, start)
    except (ValueError, json.JSONDecodeError):
        return None
    return categories if isinstance(categories, list) else None


# -------------------------------------------------------------------------------------- class counts
def _check_num_classes(cfg: Config, task: str, datasets: list[tuple[str, dict]], checks: _Checks) -> None:
    heads = list(_num_classes_keys(_model_cfg(cfg), 'model'))
    if not heads:
        return
    for key, dataset in datasets:
        known = _dataset_classes(task, key, dataset)
        if known is None:
            continue
        classes, source = known
        for head_key, num_classes in heads:
            if num_classes != len(classes):
                # mmdet's num_classes excludes the background; mmseg's counts every class; both are
                # the length of the dataset's `classes`.
                checks.fail('num_classes',
                            f'{head_key}={num_classes} but {key} has {len(classes)} classes ({source}: '
                            f'{_short(classes, 5)}): set {head_key}={len(classes)}, or set '
                            f'{key}.metainfo.classes to the {num_classes} class names')


def _num_classes_keys(node: Any, key: str) -> Iterator[tuple[str, int]]:
    """Every ``num_classes`` in the model config, with its key (``model.roi_head.bbox_head[0].num_classes``).

    Not under the backbone (a classifier's head, stripped), the train/test settings, nor the RPN head's
    (class-agnostic objectness: one class whatever the dataset).
    """
    if isinstance(node, dict):
        for name, value in node.items():
            child = f'{key}.{name}'
            if name == 'num_classes' and isinstance(value, int) and not isinstance(value, bool):
                if not key.endswith('rpn_head'):
                    yield child, value
            elif name not in ('backbone', 'train_cfg', 'test_cfg', 'data_preprocessor', 'init_cfg'):
                yield from _num_classes_keys(value, child)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _num_classes_keys(value, f'{key}[{index}]')


# -------------------------------------------------------------------------------------- shapes
@dataclass
class _Maps:
    """The feature maps one module hands to the next: width and stride of each, and who made them."""

    channels: tuple[int, ...]
    strides: tuple[int, ...] | None
    source: str


def _check_model_shapes(cfg: Config, task: str, checks: _Checks) -> None:
    model = _model_cfg(cfg)
    backbone_cfg = model.get('backbone')
    if not isinstance(backbone_cfg, dict):
        return
    in_channels = backbone_cfg.get('in_channels', 3)
    if checks.wanted('mean_std') and isinstance(in_channels, int):
        _check_mean_std(model, in_channels, checks)
    wanted = [name for name in ('neck_in_channels', 'strides', 'head_inputs') if checks.wanted(name)]
    if not wanted:
        return
    maps = _backbone_maps(cfg, task, backbone_cfg)
    if maps is None:
        return
    neck = model.get('neck')
    if isinstance(neck, dict):
        if checks.wanted('neck_in_channels'):
            _check_neck_inputs(neck, maps, checks)
        maps = _neck_maps(task, neck, maps)
        if maps is None:
            return
    elif neck is not None:
        return  # a list of necks: mmdet chains them; no shapes to follow here
    if checks.wanted('strides') and maps.strides is not None:
        _check_strides(model, task, maps, checks)
    if checks.wanted('head_inputs'):
        _check_head_inputs(model, task, maps, checks)


def _check_mean_std(model: dict, in_channels: int, checks: _Checks) -> None:
    preprocessor = model.get('data_preprocessor') or {}
    for name in ('mean', 'std'):
        values = preprocessor.get(name)
        if isinstance(values, (list, tuple)) and len(values) not in (1, in_channels):
            checks.fail('mean_std', f'model.data_preprocessor.{name} has {len(values)} values but the '
                        f'backbone takes {in_channels}-channel images (model.backbone.in_channels): give '
                        f'one value per channel')


def _backbone_maps(cfg: Config, task: str, backbone_cfg: dict) -> _Maps | None:
    """Widths and strides of the backbone's outputs, from a copy built on the meta device.

    pvt_det's backbones report ``out_channels``/``out_strides``; others (mmdet's ResNet, ...) run one forward
    pass of a meta tensor, which computes shapes only. ``None`` when the backbone cannot be built there.
    """
    import torch
    from mmengine.registry import DefaultScope
    backbone_cfg = deepcopy(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)  # building loads nothing anyway; keep the copy self-contained
    in_channels = backbone_cfg.get('in_channels', 3)
    try:
        with DefaultScope.overwrite_default_scope(cfg.default_scope), torch.device('meta'):
            backbone = _registry(task, 'MODELS').build(backbone_cfg)
            name = getattr(backbone, 'display_name', type(backbone).__name__)
            channels = getattr(backbone, 'out_channels', None)
            strides = getattr(backbone, 'out_strides', None)
            if not (isinstance(channels, tuple) and all(isinstance(c, int) for c in channels)):
                size = max(64, getattr(backbone, 'min_input_size', 1))
                size += -size % 32
                outputs = backbone(torch.zeros(1, in_channels, size, size))
                outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
                channels = tuple(int(out.shape[1]) for out in outputs)
                strides = tuple(size // int(out.shape[-1]) for out in outputs)
    except Exception:  # noqa: BLE001 - e.g. .item() during __init__: the real build reports real errors
        return None
    strides = tuple(int(s) for s in strides) if isinstance(strides, tuple) else None
    return _Maps(tuple(int(c) for c in channels), strides, f'the backbone {name}')


def _check_neck_inputs(neck: dict, maps: _Maps, checks: _Checks) -> None:
    in_channels = neck.get('in_channels')
    if not isinstance(in_channels, (list, tuple)) or list(in_channels) == list(maps.channels):
        return
    checks.fail('neck_in_channels',
                f'model.neck.in_channels={list(in_channels)} but {maps.source} outputs '
                f'{len(maps.channels)} maps of {list(maps.channels)} channels: set '
                f'model.neck.in_channels={list(maps.channels)} (or change model.backbone.out_indices)')


def _neck_maps(task: str, neck: dict, inputs: _Maps) -> _Maps | None:
    """The maps mmdet's/mmseg's FPN and mmdet's ChannelMapper return; ``None`` for other necks."""
    neck_type = str(neck.get('type', '')).split('.')[-1]
    out_channels, num_outs = neck.get('out_channels'), neck.get('num_outs')
    if not isinstance(out_channels, int):
        return None
    strides = inputs.strides
    if neck_type == 'FPN' and isinstance(num_outs, int):
        start, end = neck.get('start_level', 0), neck.get('end_level', -1)
        if end == -1 or (task == 'det' and end == len(inputs.channels) - 1):
            end = len(inputs.channels)
        elif task == 'det':
            end += 1  # mmdet's end_level is inclusive, mmseg's exclusive
        levels = list(strides[start:end]) if strides else None
    elif neck_type == 'ChannelMapper':
        num_outs = num_outs or len(inputs.channels)
        levels = list(strides) if strides else None
    else:
        return None
    if levels:  # extra levels: stride-2 convs or max-pools on top of the last one
        while len(levels) < num_outs:
            levels.append(levels[-1] * 2)
    return _Maps((out_channels,) * num_outs, tuple(levels[:num_outs]) if levels else None,
                 f'the neck ({neck_type}, num_outs={num_outs})')


def _walk(node: Any, key: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, dict]]:
    """Every dict in a config tree with its key, depth first."""
    if isinstance(node, dict):
        yield key, node
        for name, value in node.items():
            if name not in skip:
                yield from _walk(value, f'{key}.{name}', skip)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk(value, f'{key}[{index}]', skip)


def _stride_value(stride: Any) -> Any:
    if isinstance(stride, (list, tuple)) and len(stride) == 2 and stride[0] == stride[1]:
        return stride[0]  # (w, h) strides as AnchorGenerator takes them
    return stride


def _check_strides(model: dict, task: str, maps: _Maps, checks: _Checks) -> None:
    expected = list(maps.strides)
    heads = {name: value for name, value in model.items() if name not in ('backbone', 'neck')}
    for key, node in _walk(heads, 'model', skip=('train_cfg', 'test_cfg', 'init_cfg')):
        node_type = str(node.get('type', ''))
        if node_type.endswith('AnchorGenerator') and isinstance(node.get('strides'), (list, tuple)):
            strides = [_stride_value(s) for s in node['strides']]
            if strides != expected:
                checks.fail('strides', f'{key}.strides={strides} but the head gets {len(expected)} maps from '
                            f'{maps.source} with strides {expected}: set {key}.strides={expected}')
        featmap_strides = node.get('featmap_strides')
        right = expected[:len(featmap_strides)] if isinstance(featmap_strides, (list, tuple)) else None
        if right is not None and list(featmap_strides) != right:
            checks.fail('strides', f'{key}.featmap_strides={list(featmap_strides)} but {maps.source} gives '
                        f'maps with strides {expected}: set {key}.featmap_strides={right}')
    if task == 'seg':
        for key, head in _seg_heads(model):
            feature_strides, in_index = head.get('feature_strides'), head.get('in_index')
            if isinstance(feature_strides, (list, tuple)) and isinstance(in_index, (list, tuple)) and \
                    all(isinstance(i, int) and -len(expected) <= i < len(expected) for i in in_index):
                right = [expected[i] for i in in_index]
                if list(feature_strides) != right:
                    checks.fail('strides', f'{key}.feature_strides={list(feature_strides)} but the maps at '
                                f'in_index {list(in_index)} of {maps.source} have strides {right}: set '
                                f'{key}.feature_strides={right}')


def _seg_heads(model: dict) -> Iterator[tuple[str, dict]]:
    for name in ('decode_head', 'auxiliary_head'):
        head = model.get(name)
        heads = head if isinstance(head, (list, tuple)) else [head]
        for index, one in enumerate(heads):
            if isinstance(one, dict):
                yield (f'model.{name}' if isinstance(head, dict) else f'model.{name}[{index}]'), one


def _check_head_inputs(model: dict, task: str, maps: _Maps, checks: _Checks) -> None:
    count = len(maps.channels)
    if task == 'seg':
        for key, head in _seg_heads(model):
            _check_seg_head_inputs(key, head, maps, checks)
        return
    # mmdet: one-stage heads and the RPN take every map; their in_channels is the neck's width.
    widths = set(maps.channels)
    if len(widths) != 1:
        return
    width = widths.pop()
    for name in ('bbox_head', 'rpn_head'):
        head = model.get(name)
        head_width = head.get('in_channels') if isinstance(head, dict) else None
        if isinstance(head_width, int) and head_width != width:
            checks.fail('head_inputs', f'model.{name}.in_channels={head_width} but {maps.source} '
                        f'gives {count} maps of {width} channels: set model.{name}.in_channels={width}')
    for key, node in _walk(model.get('roi_head'), 'model.roi_head', skip=('train_cfg', 'test_cfg')):
        if key.endswith('roi_extractor') and isinstance(node.get('out_channels'), int) and \
                node['out_channels'] != width:
            checks.fail('head_inputs', f'{key}.out_channels={node["out_channels"]} but {maps.source} gives '
                        f'maps of {width} channels: set {key}.out_channels={width}')


def _check_seg_head_inputs(key: str, head: dict, maps: _Maps, checks: _Checks) -> None:
    in_index, in_channels = head.get('in_index', -1), head.get('in_channels')
    indices = list(in_index) if isinstance(in_index, (list, tuple)) else [in_index]
    count = len(maps.channels)
    bad = [i for i in indices if not isinstance(i, int) or not -count <= i < count]
    if bad:
        checks.fail('head_inputs', f'{key}.in_index={in_index} but {maps.source} gives {count} maps: use '
                    f'indices in 0..{count - 1}')
    # resize_concat too: its in_channels lists the widths it concatenates.
    selected = [maps.channels[i] for i in indices]
    widths = list(in_channels) if isinstance(in_channels, (list, tuple)) else [in_channels]
    if all(isinstance(w, int) for w in widths) and widths != selected:
        right = selected if isinstance(in_channels, (list, tuple)) else selected[0]
        checks.fail('head_inputs', f'{key}.in_channels={in_channels} but the maps at in_index {in_index} '
                    f'of {maps.source} have {selected} channels: set {key}.in_channels={right}')
