"""mmdet's or mmseg's registries for a task, and the class a dataset config names: one place for the checks
(pre-flight, dataset contents, panoptic, feature maps) that look classes up without building anything."""
from __future__ import annotations

from typing import Any


def registry(task: str, kind: str) -> Any:
    """mmdet's (``task='det'``) or mmseg's registry ``kind`` (``'MODELS'``, ``'DATASETS'``, ...)."""
    if task == 'det':
        from mmdet import registry as mm_registry
    else:
        from mmseg import registry as mm_registry
    return getattr(mm_registry, kind)


def registered_dataset_class(task: str, dataset: dict) -> type | None:
    """The class ``dataset['type']`` names, or ``None`` where it names none this task's registry knows."""
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, type):
        return dataset_type
    if not isinstance(dataset_type, str):
        return None
    try:
        return registry(task, 'DATASETS').get(dataset_type)
    except KeyError:  # e.g. a scope that is not imported: the runner will say so when it builds it
        return None
