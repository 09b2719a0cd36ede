"""Pre-flight for panoptic models (mmdet's MaskFormer / Mask2Former): the dataset's thing and stuff classes
against the heads' ``num_things_classes`` / ``num_stuff_classes``.

mmdet's panoptic heads number labels things first (label < num_things_classes is a thing) and their
classifier has ``num_things + num_stuff + 1`` outputs (the last: "no object"); a dataset with other counts
trains without an error and then scores every class under another's name, or fails deep in the matcher.
Run by :func:`pvt_det.config.preflight.check_config` under the ``num_classes`` check.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Any

from .feature_maps import walk
from .registries import registered_dataset_class

_HEAD_KEYS = ('num_things_classes', 'num_stuff_classes')
_MAX_PARSE_BYTES = 64 * 2**20  # COCO's panoptic_val2017.json is 2 MB; a larger file is left to the dataset


def panoptic_heads(model: dict) -> list[tuple[str, dict]]:
    """The model's dicts that set both thing and stuff counts (panoptic_head, panoptic_fusion_head)."""
    return [(key, node) for key, node in walk(model, 'model', skip=('backbone', 'train_cfg', 'test_cfg'))
            if all(isinstance(node.get(name), int) for name in _HEAD_KEYS)]


def _is_panoptic_dataset(dataset: dict) -> bool:
    from mmdet.datasets import CocoPanopticDataset
    dataset_class = registered_dataset_class('det', dataset)
    return isinstance(dataset_class, type) and issubclass(dataset_class, CocoPanopticDataset)


def is_instances_metric_of_panoptic_dataset(dataset: dict, metric: dict) -> bool:
    """A CocoMetric next to a panoptic dataset scores the thing instances of COCO's ``instances_*.json``
    (Mask2Former's recipe evaluates both), so it rightly reads another file than the dataset."""
    return str(metric.get('type', '')).split('.')[-1] == 'CocoMetric' and _is_panoptic_dataset(dataset)


def _names(metainfo: dict, name: str) -> tuple[str, ...] | None:
    value = metainfo.get(name)
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _split_of(dataset: dict) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str] | None:
    """(classes, things, stuff, where from) as the dataset will use them; None when unknown."""
    dataset_class = registered_dataset_class('det', dataset)
    defaults = getattr(dataset_class, 'METAINFO', {}) if dataset_class else {}
    metainfo = dict(dataset.get('metainfo') or {})
    source = 'metainfo' if metainfo.get('classes') is not None else f"{dataset.get('type')}'s defaults"
    if _is_panoptic_dataset(dataset):
        classes = _names(metainfo, 'classes') or _names(defaults, 'classes')
        things = _names(metainfo, 'thing_classes') or _names(defaults, 'thing_classes')
        stuff = _names(metainfo, 'stuff_classes') or _names(defaults, 'stuff_classes')
    else:  # an instance dataset (Mask2Former's instance recipe): every class is a thing
        classes = _names(metainfo, 'classes') or _names(defaults, 'classes')
        things, stuff = classes, ()
    if classes is None or things is None or stuff is None:
        return None
    return classes, things, stuff, source


def check_panoptic_classes(model: dict, datasets: list[tuple[str, dict]], checks: Any) -> None:
    """Fail (``checks.fail('num_classes', ...)``) when a panoptic head disagrees with a dataset's classes."""
    heads = panoptic_heads(model)
    if not heads:
        return
    for key, dataset in datasets:
        split = _split_of(dataset)
        if split is None:
            continue
        classes, things, stuff, source = split
        if tuple(classes) != tuple(things) + tuple(stuff):
            checks.fail('num_classes',
                        f'{key}.metainfo.classes must be the thing classes followed by the stuff classes '
                        f'(mmdet\'s panoptic heads take labels below num_things_classes as things); got '
                        f'classes={classes!r}, thing_classes={things!r}, stuff_classes={stuff!r} ({source}). '
                        f'Set {key}.metainfo.classes={tuple(things) + tuple(stuff)!r}')
        for head_key, head in heads:
            for name, wanted in (('num_things_classes', len(things)), ('num_stuff_classes', len(stuff))):
                if head[name] != wanted:
                    checks.fail('num_classes',
                                f'{head_key}.{name}={head[name]} but {key} has {wanted} '
                                f'{"thing" if name == "num_things_classes" else "stuff"} classes '
                                f'({source}): set every {name} in the model (panoptic_head and '
                                f'panoptic_fusion_head) to {wanted}')
            class_weight = (head.get('loss_cls') or {}).get('class_weight')
            if isinstance(class_weight, (list, tuple)) and len(class_weight) != len(classes) + 1:
                checks.fail('num_classes',
                            f'{head_key}.loss_cls.class_weight has {len(class_weight)} values; the classifier '
                            f'has {len(classes) + 1} outputs ({len(classes)} classes of {key} and "no '
                            f'object"): set it to [1.0] * {len(classes)} + [0.1]')
        _check_isthing_flags(key, dataset, things, stuff, checks)


def _check_isthing_flags(key: str, dataset: dict, things: tuple[str, ...], stuff: tuple[str, ...],
                         checks: Any) -> None:
    """The file's ``isthing`` flags decide what the dataset loads as instances; CocoPanopticMetric decides
    by ``thing_classes``: the two must agree."""
    if not _is_panoptic_dataset(dataset) or not dataset.get('ann_file'):
        return
    path = dataset['ann_file']
    if dataset.get('data_root') and not osp.isabs(path):
        path = osp.join(dataset['data_root'], path)
    if '://' in path or not osp.isfile(path) or osp.getsize(path) > _MAX_PARSE_BYTES:
        return
    try:
        with open(path, encoding='utf-8') as file:
            categories = json.load(file).get('categories') or []
    except (ValueError, UnicodeDecodeError, AttributeError):
        return  # not JSON / not an object: the ann_file check says so
    flags = {category.get('name'): category.get('isthing') for category in categories
             if isinstance(category, dict)}
    wrong = [name for name in things if flags.get(name, 1) != 1]
    wrong += [name for name in stuff if flags.get(name, 0) != 0]
    if wrong:
        checks.fail('num_classes',
                    f'{path} ({key}.ann_file) marks {wrong!r} with another isthing than '
                    f'{key}.metainfo thing_classes / stuff_classes do: put each name in thing_classes '
                    f'when its category has isthing=1, in stuff_classes when isthing=0')
