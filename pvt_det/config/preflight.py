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
from typing import Any

from mmengine.config import Config

from ..cli import ToolError
from .feature_maps import backbone_maps, model_cfg, necks, readers, sites, walk
from .registries import registered_dataset_class
from .loading import task_of
from .preflight_panoptic import check_panoptic_classes, is_instances_metric_of_panoptic_dataset
from .preflight_depth import CHECK as DEPTH_CHECK, DESCRIPTION as DEPTH_DESCRIPTION, check_depth

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
    'unused_keys': 'every top-level key set by --cfg-options or a child config reaches the run '
                   '(pvt_det.config.unused_keys)',
    DEPTH_CHECK: DEPTH_DESCRIPTION,
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
            _check_one_dataset_paths(dataset, key, hint, task_of(cfg))
    for evaluator, split in _evaluated_splits(loaders):
        for _key, metric in _metrics(cfg, evaluator):
            ann_file = metric.get('ann_file')
            if ann_file and _is_local(ann_file) and not osp.isfile(ann_file):
                raise ToolError(f'evaluation annotation file not found: {ann_file} '
                                f'({evaluator}.ann_file). Set it to the same file as '
                                f'{split}.dataset.ann_file (with its data_root)')


def _check_one_dataset_paths(dataset: dict, key: str, hint: str, task: str) -> None:
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
        if not isinstance(prefix, str) or not prefix or not _reads_prefix(task, dataset, name):
            continue  # None / '' (nothing to check), or a folder nothing will read
        path = _join(data_root, prefix)
        if _is_local(path) and not osp.isdir(path):
            raise ToolError(f'dataset folder not found: {path} ({key}.data_prefix.{name}). '
                            f'Expected {hint}; or set {key}.data_prefix')


def _reads_prefix(task: str, dataset: dict, name: str) -> bool:
    """Whether training reads ``data_prefix[name]``: mmdet's CocoDataset names a ``seg`` map for every image,
    but only a pipeline that loads panoptic or semantic maps opens it (an instance Mask2Former does not)."""
    pipeline = dataset.get('pipeline')
    if task != 'det' or name != 'seg' or not isinstance(pipeline, (list, tuple)):
        return True
    return any(isinstance(step, dict) and (str(step.get('type', '')).endswith('LoadPanopticAnnotations')
                                           or step.get('with_seg')) for step in pipeline)


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
        check_panoptic_classes(model_cfg(cfg), datasets, checks)  # thing / stuff counts
    if checks.wanted('evaluator_ann_file'):
        _check_evaluator_ann_files(cfg, loaders, checks)
    if checks.wanted('mask_annotations') and task == 'det':
        _check_mask_annotations(cfg, loaders, checks)
    check_depth(cfg, datasets, checks)  # depth range and scale vs the head's max_depth
    _check_model_shapes(cfg, task, checks)


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
    for key, checkpoint in _pretrained_checkpoints(model_cfg(cfg), 'model'):
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
                    osp.realpath(ann_file) != osp.realpath(dataset_file) and \
                    not is_instances_metric_of_panoptic_dataset(dataset, metric):
                checks.fail('evaluator_ann_file',
                            f'{metric_key}.ann_file={ann_file!r} is not the file {key} reads '
                            f'({dataset_file}): the predictions would be scored against other ground '
                            f'truth. Set {metric_key}.ann_file={dataset_file!r}')


def _check_mask_annotations(cfg: Config, loaders: tuple[str, ...], checks: _Checks) -> None:
    """Mask R-CNN's mask loss needs ``gt_masks``; without them the first step fails deep in mmdet."""
    model = model_cfg(cfg)
    mask_heads = [key for key, node in walk(model, 'model', skip=('backbone', 'train_cfg', 'test_cfg'))
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
def _dataset_classes(task: str, key: str, dataset: dict) -> tuple[tuple[str, ...], str] | None:
    """The classes the dataset will use and where they come from: ``metainfo.classes`` in the config
    (as mmengine's BaseDataset reads it, a file path holds one name per line), else the dataset class's
    ``METAINFO`` (CocoDataset: COCO's 80, ADE20KDataset: ADE20K's 150), read without building it."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    source = f'{key}.metainfo.classes'
    if classes is None:
        dataset_class = registered_dataset_class(task, dataset)
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
    dataset_class = registered_dataset_class(task, dataset)
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
    heads = list(_num_classes_keys(model_cfg(cfg), 'model'))
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
# Where the model reads the backbone's maps, and what must agree with them, is pvt_det.config.feature_maps's
# knowledge (the backbone swap rewrites with it): here each of its sites is compared.
def _check_model_shapes(cfg: Config, task: str, checks: _Checks) -> None:
    model = model_cfg(cfg)
    backbone_cfg = model.get('backbone')
    if not isinstance(backbone_cfg, dict):
        return
    in_channels = backbone_cfg.get('in_channels', 3)
    if checks.wanted('mean_std') and isinstance(in_channels, int):
        _check_mean_std(model, in_channels, checks)
    _check_necks_have_a_type(model, task)
    _check_model_level_pretrained(model)
    if not any(checks.wanted(name) for name in ('neck_in_channels', 'strides', 'head_inputs')):
        return
    maps = backbone_maps(cfg.get('default_scope'), task, backbone_cfg)
    if maps is None:
        return
    for site in sites(model, task, maps):
        if checks.wanted(site.check) and not site.agrees:
            checks.fail(site.check, site.message)


def _check_mean_std(model: dict, in_channels: int, checks: _Checks) -> None:
    preprocessor = model.get('data_preprocessor') or {}
    for name in ('mean', 'std'):
        values = preprocessor.get(name)
        if isinstance(values, (list, tuple)) and len(values) not in (1, in_channels):
            checks.fail('mean_std', f'model.data_preprocessor.{name} has {len(values)} values but the '
                        f'backbone takes {in_channels}-channel images (model.backbone.in_channels): give '
                        f'one value per channel')


def _check_model_level_pretrained(model: dict) -> None:
    """mmseg's segmentors hand a model-level ``pretrained`` to the backbone, which pvt_det's do not take."""
    pretrained, backbone_type = model.get('pretrained'), model['backbone'].get('type')
    if isinstance(pretrained, str) and backbone_type in ('PVT', 'PVTv2', 'CvT'):
        raise ToolError(f'model.pretrained={pretrained!r} would be passed to model.backbone ({backbone_type}), '
                        'which takes its weights as init_cfg: set model.pretrained=None and model.backbone.'
                        "init_cfg=dict(type='Pretrained', checkpoint=...) (tools/swap_backbone.py does)")


def _check_necks_have_a_type(model: dict, task: str) -> None:
    """``neck=dict(in_channels=...)`` merged into a model without a neck (MaskFormer, PSPNet, ...) makes a
    neck without a type, which mmengine reports as a KeyError at build time."""
    for key, _, neck in necks(model):
        if 'type' not in neck:
            without = {name: value for name, value in model.items() if name != 'neck'}
            where = ', '.join(readers(without, task)) or 'its heads'
            raise ToolError(f'{key} has no type ({key}={dict(neck)}): this {model.get("type", "model")} has no '
                            f'neck, so the override makes one; its backbone maps are read through {where}: '
                            'set those instead and drop the neck override (tools/swap_backbone.py writes them)')
