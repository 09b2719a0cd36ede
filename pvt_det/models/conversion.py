"""Rewrite checkpoint files into pvt_det's layout: what ``tools/convert_weights.py`` does.

Three kinds of source, told apart by their keys:

* a *classification* or *backbone* checkpoint (any registered layout): written as a classifier state dict
  (``backbone.`` + head keys) or a backbone state dict; the architecture is detected (or given) and must fit;
* a *detector/segmentor* checkpoint (``backbone.*`` next to ``neck.*``, ``bbox_head.*``, ``decode_head.*`` ...):
  the backbone part is converted, the neck and head keys and the ``meta`` are kept, so ``tools/test.py`` and
  ``load_from`` read the result with nothing left to convert;
* ``backbone_only=True`` on either: just the backbone, which ``init_cfg=dict(type='Pretrained', checkpoint=...)``
  loads strictly (e.g. to start a new detector from a trained detector's backbone).

``to`` other than ``'ours'`` loads the source into the matching pvt_det model (as above) and writes it in another
project's layout through :mod:`pvt_det.models.layout_export` (official, mmdet, Hugging Face, timm), verified there;
of a detector/segmentor only the backbone is written and the rest is named in the report.

Writes are atomic (a kill mid-write leaves no partial file). This module may import both the backbones and the
classifiers; :mod:`pvt_det.models.checkpoint` imports neither.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_output
from .checkpoint import (_DENSE_UNUSED, CheckpointError, Layout, StateDict, _check_fits, _listing,
                         convert_state_dict, load_pretrained, read_checkpoint, registered_layouts,
                         resolve_checkpoint, strip_prefix, unwrap_state_dict)
from .classifiers import build_classifier, classifier_names
from .layout_export import EXPORT_TARGETS, export_model

__all__ = ['CONVERSION_TARGETS', 'ConversionReport', 'convert_checkpoint_file', 'is_whole_model']

# Top-level keys of pvt_det's classifier namespace besides 'backbone.': a file with any other top-level name
# (neck, bbox_head, decode_head ...) is a whole detector/segmentor.
_CLASSIFIER_KEYS = ('head.', 'norm.', 'cls_token', 'cls_pos_embed')


@dataclass
class ConversionReport:
    path: str
    layout: str  # 'family/layout' of the source backbone
    kind: str  # 'classifier', 'backbone' or 'detector' (whole model)
    arch: str | None  # classifier name whose backbone fits, None for a custom arch
    keys: list[str] = field(default_factory=list)
    target: str = 'ours'  # the layout written (see CONVERSION_TARGETS)
    written_as: str = 'pvt_det layout'  # the layout, or the transformers class
    left_out: list[str] = field(default_factory=list)  # whole-model keys not written (exports write the backbone)
    max_rel_diff: float | None = None  # of an export's verification

CONVERSION_TARGETS = ('ours', ) + EXPORT_TARGETS


def is_whole_model(state_dict: Mapping[str, Any]) -> bool:
    """A detector/segmentor checkpoint: ``backbone.*`` keys next to keys that no classifier has."""
    return any(key.startswith('backbone.') for key in state_dict) and any(
        not key.startswith(('backbone.', ) + _CLASSIFIER_KEYS) for key in state_dict)


def convert_checkpoint_file(src: str | os.PathLike,
                            dst: str | os.PathLike,
                            arch: str | None = None,
                            overwrite: bool = False,
                            backbone_only: bool = False,
                            to: str = 'ours',
                            backbone_kwargs: dict[str, Any] | None = None) -> ConversionReport:
    """Rewrite checkpoint ``src`` (any registered layout, any kind: see the module docstring) into pvt_det's
    layout at ``dst``, or with ``to`` into another project's (:data:`CONVERSION_TARGETS`).

    ``arch`` is a classifier name (``'pvt_v2_b2'``); without it every registered architecture is tried and the
    one whose parameter names and shapes fit exactly is used. A classification/backbone file must fit one; a
    detector's backbone may be a custom arch (its own config checks it when it is loaded), except for an export.
    ``.safetensors`` destinations are supported for classifier and backbone files. ``backbone_kwargs`` are passed
    to the backbone an export builds (what the file cannot say, e.g. a CvT's ``act_cfg``).
    """
    dst = Path(dst)
    if to not in CONVERSION_TARGETS:
        raise ValueError(f'unknown target layout {to!r}; valid: {list(CONVERSION_TARGETS)}')
    if dst.exists() and not overwrite:
        raise FileExistsError(f'{dst} already exists; choose another destination or pass --overwrite')
    if arch is not None and arch not in classifier_names():
        raise ValueError(f'unknown arch {arch!r}; valid: {classifier_names()}')
    path = resolve_checkpoint(src)
    checkpoint = read_checkpoint(path)
    state_dict = unwrap_state_dict(checkpoint, source=str(path))
    if to != 'ours':
        return _export(state_dict, path, dst, arch, backbone_only, to, overwrite, backbone_kwargs or {})
    if is_whole_model(state_dict):
        return _convert_whole_model(checkpoint, state_dict, path, dst, arch, backbone_only)
    report = _convert_classifier(state_dict, path, dst, arch, backbone_only)
    return report


# ------------------------------------------------------------------------------------ other projects' layouts
def _export(state_dict: StateDict, path: Path, dst: Path, arch: str | None, backbone_only: bool, to: str,
            overwrite: bool, backbone_kwargs: dict[str, Any]) -> ConversionReport:
    """Load ``state_dict`` into the pvt_det model it fits, then write that model in layout ``to``."""
    left_out: list[str] = []
    if is_whole_model(state_dict):
        inner = strip_prefix(state_dict, 'backbone.')
        layout = _detect_any_family(inner, path)
        name, _ = _identify_arch(inner, layout, path, arch)
        if name is None:
            raise CheckpointError(f'{path}: its backbone fits no named architecture; pass --arch (a custom arch '
                                  f'cannot be exported from the command line)')
        left_out = sorted(key for key in state_dict if not key.startswith('backbone.'))
        model = build_classifier(name, num_classes=0, **_export_kwargs(name, inner, backbone_kwargs)).backbone
        load_pretrained(model, inner, layout.family)
        kind, source_layout = 'backbone', f'{layout.family}/{layout.name}'
    else:
        name, family, layout_name, kind, converted = _fit_classifier(state_dict, path, arch, backbone_only)
        head = converted.get('head.weight')
        num_classes = 0 if head is None else head.shape[0]
        model = build_classifier(name, num_classes=num_classes,
                                 **_export_kwargs(name, converted, backbone_kwargs))
        if kind == 'backbone':
            model = model.backbone
        load_pretrained(model, state_dict, family)
        source_layout = f'{family}/{layout_name}'
    meta = dict(arch=name, source=str(path), source_layout=source_layout)
    report = export_model(model, dst, to, overwrite=overwrite, left_out=left_out, meta=meta)
    return ConversionReport(str(dst), source_layout, report.kind, name, report.keys, to, report.written_as,
                            report.left_out, report.max_rel_diff)


def _export_kwargs(name: str, converted: StateDict, backbone_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the file implies (v1's ``pretrain_img_size``), then what the caller says."""
    probe = _meta_model(name, 0, ())
    implied = getattr(type(probe.backbone), 'kwargs_for_state_dict', lambda _: {})(converted)
    try:
        with torch.device('meta'):
            build_classifier(name, num_classes=0, **backbone_kwargs)
    except TypeError:
        raise CheckpointError(f'{name} takes no {sorted(backbone_kwargs)} (a CvT option on a '
                              f'{probe.backbone.family} checkpoint?)') from None
    return dict(implied, **backbone_kwargs)


# ------------------------------------------------------------------------------------- classifier / backbone
def _convert_classifier(state_dict: StateDict, path: Path, dst: Path, arch: str | None,
                        backbone_only: bool) -> ConversionReport:
    name, family, layout_name, kind, output = _fit_classifier(state_dict, path, arch, backbone_only)
    meta = dict(arch=name, source=str(path), source_layout=f'{family}/{layout_name}')
    _save(output, dst, meta)
    return ConversionReport(str(dst), f'{family}/{layout_name}', kind, name, sorted(output))


def _fit_classifier(state_dict: StateDict, path: Path, arch: str | None,
                    backbone_only: bool) -> tuple[str, str, str, str, StateDict]:
    """The classifier name whose classifier (or backbone) ``state_dict`` fits exactly, its family, the source
    layout's name, ``'classifier'`` or ``'backbone'``, and the converted state dict in that module's names."""
    failures: dict[str, str] = {}
    for name in [arch] if arch else classifier_names():
        family = _family_of(name)
        try:
            converted, layout, _ = convert_state_dict(state_dict, None, family, str(path))
        except CheckpointError as error:
            failures[name] = str(error)
            continue
        head = converted.get('head.weight')
        num_classes = 0 if head is None else head.shape[0]
        model = _meta_classifier(name, num_classes, converted)
        classifier_only = [key for key in converted if not key.startswith('backbone.')]
        if classifier_only and not backbone_only:
            target, output, kind = model, converted, 'classifier'
        else:
            target, output, kind = model.backbone, strip_prefix(converted, 'backbone.'), 'backbone'
        try:
            _check_fits(target, output, str(path), layout)
        except CheckpointError as error:
            failures[name] = str(error)
            continue
        return name, family, layout.name, kind, output
    if arch:
        raise CheckpointError(failures[arch])
    layouts = sorted({
        msg.split(' layout)')[0].rsplit('(', 1)[-1]
        for msg in failures.values() if ' layout)' in msg
    })
    raise CheckpointError(f'{path} fits none of the known architectures ' + (
        f'(recognised as {", ".join(layouts)} layout but no arch has exactly these parameter shapes; custom '
        f'archs: convert in Python with pvt_det.models.checkpoint.convert_state_dict)'
        if layouts else f'(unknown layout; first keys {_listing(sorted(state_dict))})'))


# ------------------------------------------------------------------------------------------- whole models
def _convert_whole_model(checkpoint: Any, state_dict: StateDict, path: Path, dst: Path, arch: str | None,
                         backbone_only: bool) -> ConversionReport:
    inner = strip_prefix(state_dict, 'backbone.')
    layout = _detect_any_family(inner, path)
    name, converted = _identify_arch(inner, layout, path, arch)
    backbone = strip_prefix(converted, 'backbone.')
    # Classifier-only keys inside a detector's backbone: the unused v1 cls row goes; anything else stays under
    # 'backbone.' so that loading the result names it as unexpected.
    extra = {key: value for key, value in converted.items()
             if not key.startswith('backbone.') and key not in _DENSE_UNUSED}
    source_layout = f'{layout.family}/{layout.name}'
    conversion = dict(arch=name or 'custom', source=str(path), source_layout=source_layout)
    if backbone_only:
        if extra:
            raise CheckpointError(f'{path}: the backbone part has classifier keys {_listing(sorted(extra))}')
        _save(backbone, dst, conversion)
        return ConversionReport(str(dst), source_layout, 'backbone', name, sorted(backbone))
    if dst.suffix == '.safetensors':
        raise CheckpointError(f'{dst}: a whole detector/segmentor checkpoint is written as .pth (mmengine reads '
                              f'only those); pass --backbone-only for a safetensors backbone file')
    output = {f'backbone.{key}': value for key, value in backbone.items()}
    output.update({f'backbone.{key}': value for key, value in extra.items()})
    output.update({key: value for key, value in state_dict.items() if not key.startswith('backbone.')})
    meta = dict(checkpoint.get('meta') or {}) if isinstance(checkpoint, Mapping) else {}
    meta['pvt_det_conversion'] = conversion
    with atomic_output(dst) as tmp_path:
        torch.save({'state_dict': {key: value.contiguous() for key, value in output.items()}, 'meta': meta},
                   tmp_path)
    return ConversionReport(str(dst), source_layout, 'detector', name, sorted(output))


def _detect_any_family(inner: StateDict, path: Path) -> Layout:
    for layout in registered_layouts():
        if layout.detect(inner):
            return layout
    raise CheckpointError(f'{path} is a detector/segmentor checkpoint whose backbone (keys under backbone.) is in '
                          f'no known layout; its first backbone keys are {_listing(sorted(inner))}')


def _identify_arch(inner: StateDict, layout: Layout, path: Path,
                   arch: str | None) -> tuple[str | None, StateDict]:
    """The named arch whose backbone the converted keys fit exactly (``arch`` if given), and the converted keys.

    No named arch fitting is fine without ``arch`` (a custom arch): the keys are converted without a target.
    """
    # Without a target first: it tells the constructor kwargs (v1's pretrain_img_size from the position grid).
    untargeted, _, _ = convert_state_dict(inner, None, layout.family, str(path))
    candidates = [arch] if arch else [name for name in classifier_names() if _family_of(name) == layout.family]
    failures = {}
    for name in candidates:
        if _family_of(name) != layout.family:
            raise CheckpointError(f'{path}: its backbone is a {layout.family} checkpoint ({layout.name} layout), '
                                  f'not a {name}; pass a {layout.family} arch or none')
        backbone = _meta_classifier(name, 0, untargeted).backbone
        try:
            converted, _, _ = convert_state_dict(inner, backbone, layout.family, str(path))
            _check_fits(backbone, strip_prefix(converted, 'backbone.'), str(path), layout)
        except CheckpointError as error:
            failures[name] = str(error)
            continue
        return name, converted
    if arch:
        raise CheckpointError(failures[arch])
    return None, untargeted


# ------------------------------------------------------------------------------------------------ helpers
def _family_of(name: str) -> str:
    return _meta_model(name, 0, ()).backbone.family


def _meta_classifier(name: str, num_classes: int, converted: StateDict) -> torch.nn.Module:
    """Classifier ``name`` on the meta device (no memory), with the constructor kwargs ``converted`` implies."""
    probe = _meta_model(name, num_classes, ())
    kwargs = getattr(type(probe.backbone), 'kwargs_for_state_dict', lambda _: {})(converted)
    return _meta_model(name, num_classes, tuple(sorted(kwargs.items()))) if kwargs else probe


@functools.lru_cache(maxsize=None)
def _meta_model(name: str, num_classes: int, kwargs: tuple[tuple[str, Any], ...]) -> torch.nn.Module:
    """Built once per process: trying every architecture for a file builds each of them (half a second apiece
    even on the meta device). Used for parameter names and shapes only."""
    with torch.device('meta'):
        return build_classifier(name, num_classes=num_classes, **dict(kwargs))


def _save(state_dict: StateDict, dst: Path, meta: dict[str, str]) -> None:
    """Write atomically: a kill mid-write leaves no partial ``dst`` (nor touches an existing one)."""
    tensors = {key: value.contiguous() for key, value in state_dict.items()}
    with atomic_output(dst) as tmp_path:
        if dst.suffix == '.safetensors':
            from safetensors.torch import save_file
            save_file(tensors, tmp_path, metadata=meta)
        else:
            torch.save({'state_dict': tensors, 'meta': meta}, tmp_path)
