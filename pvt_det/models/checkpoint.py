"""Checkpoint loading shared by every backbone family: read, unwrap, detect the layout, convert, load strictly.

A *family* (``'pvt'``, ``'pvt_v2'``, ``'cvt'``) registers one *layout* per checkpoint flavour it understands
(official release, Hugging Face, mmdet, ours) with :func:`register_layout`. A layout's ``convert`` returns the
state dict in pvt_det's *classifier namespace*: backbone parameters under ``'backbone.'`` and classifier-only
parameters (head, final norm, cls token) at the top level. :func:`load_pretrained` then loads it strictly:

* into a classifier (a module with a ``backbone`` attribute): every key must match;
* into a backbone: the ``'backbone.'`` keys must match; the classifier-only keys are dropped on purpose and
  reported in the log and in the returned :class:`LoadReport`.

Any missing, unexpected or mis-shaped key raises :class:`CheckpointError` naming the keys and the file.

Whole detector/segmentor checkpoints never come through here: every backbone converts the keys under its own
prefix when a state dict is loaded into it (:func:`convert_backbone_keys`, called from
``PyramidBackbone._load_from_state_dict``), so ``load_state_dict`` / mmengine's ``load_checkpoint`` accept every
registered layout. Fitting a whole checkpoint to a whole model is :mod:`pvt_det.models.model_checkpoint`; rewriting
files is :mod:`pvt_det.models.conversion`. This module imports neither backbones nor classifiers.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from mmengine.logging import print_log
from torch import nn

StateDict = dict[str, torch.Tensor]

__all__ = [
    'CheckpointError',
    'UnknownLayoutError',
    'Layout',
    'LoadReport',
    'register_layout',
    'registered_layouts',
    'read_checkpoint',
    'unwrap_state_dict',
    'load_state_dict_file',
    'resolve_checkpoint',
    'detect_layout',
    'convert_state_dict',
    'load_pretrained',
    'strip_prefix',
    'convert_backbone_keys',
    'is_own_layout',
]

URL_PREFIXES = ('http://', 'https://')
# How many key names an error message lists before saying "... and N more".
_MAX_LISTED = 8


class CheckpointError(ValueError):
    """A checkpoint cannot be read, is of an unknown layout, or does not fit the model."""


class UnknownLayoutError(CheckpointError):
    """No registered layout of the family recognises the keys."""


@dataclass(frozen=True)
class Layout:
    family: str
    name: str
    detect: Callable[[StateDict], bool]
    convert: Callable[[StateDict, nn.Module], StateDict]
    # LayerNorm eps the checkpoint's code trained with, (blocks and stage norms, patch-embed and
    # spatial-reduction norms); None: whatever the backbone has (pvt_det's own files carry theirs).
    norm_eps: tuple[float, float] | None = None


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: the file, the layout it recognised and the keys it dropped on purpose."""

    path: str
    layout: str
    loaded_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)


_LAYOUTS: dict[str, list[Layout]] = {}


def register_layout(family: str, name: str, detect: Callable[[StateDict], bool],
                    convert: Callable[[StateDict, nn.Module], StateDict],
                    norm_eps: tuple[float, float] | None = None) -> None:
    """Register how to recognise (``detect``) and translate (``convert``) one checkpoint layout of ``family``.

    ``convert(state_dict, backbone)`` receives the unwrapped source state dict and the target *backbone* module
    and returns pvt_det's classifier namespace (see the module docstring). ``norm_eps`` is the LayerNorm eps of
    the code that wrote such files, ``(block/stage norms, patch-embed/spatial-reduction norms)``: every
    conversion into a backbone with ``follow_norm_eps`` sets it, so the weights compute what they computed
    where they were trained. Layouts are tried in registration order; re-registering a ``(family, name)``
    pair replaces it.
    """
    entries = _LAYOUTS.setdefault(family, [])
    entries[:] = [entry for entry in entries if entry.name != name]
    entries.append(Layout(family, name, detect, convert, norm_eps))


def registered_layouts(family: str | None = None) -> list[Layout]:
    if family is None:
        return [layout for entries in _LAYOUTS.values() for layout in entries]
    return list(_LAYOUTS.get(family, []))


# --------------------------------------------------------------------------------------------- reading files
def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """Local path of ``checkpoint``; URLs are downloaded once into torch.hub's cache (``$TORCH_HOME``)."""
    text = str(checkpoint)
    if not text.startswith(URL_PREFIXES):
        return Path(checkpoint).expanduser()
    url = urlparse(text)
    parts = [part for part in url.path.split('/') if part]
    # Hugging Face serves every model as <org>/<repo>/resolve/<rev>/pytorch_model.bin: without the
    # repo in the cached name, cvt-21 would be read from cvt-13's cached file.
    file_name = '--'.join(parts[:2] + parts[-1:]) if url.netloc.endswith('huggingface.co') else parts[-1]
    cached = Path(torch.hub.get_dir()) / 'checkpoints' / file_name
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(text, str(cached), progress=False)
    except Exception as error:  # offline, proxy, HTTP 404 ...: all end in the same advice
        raise CheckpointError(
            f'could not download {text} ({type(error).__name__}: {_first_line(error)}). Download it on a '
            f'machine with internet access and either put it at {cached} or point the config at it, e.g. '
            f'--cfg-options model.backbone.init_cfg.checkpoint=checkpoints/{file_name}; to train from '
            f'scratch instead pass --cfg-options model.backbone.init_cfg=None') from None
    return cached


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Read a ``.pth``/``.pt``/``.bin`` pickle (safely, ``weights_only=True``) or a ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint file not found: {path} (check the path, or pass '
                                f'init_cfg=None to train from scratch)')
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import load_file
            return load_file(str(path), device='cpu')
        return torch.load(path, map_location='cpu', weights_only=True)
    except ImportError:
        raise CheckpointError(f'{path} is a .safetensors file: install the safetensors package '
                              f'(pip install safetensors) to read it') from None
    except Exception as error:
        raise CheckpointError(
            f'cannot read checkpoint {path}: {type(error).__name__}: {_first_line(error)}. The file is '
            f'truncated or not a PyTorch/safetensors checkpoint; download it again') from None


def unwrap_state_dict(obj: Any, source: str = 'checkpoint') -> StateDict:
    """The tensor dict inside ``obj``: descends ``state_dict``/``model``/``module`` wrappers, strips ``module.``."""
    while isinstance(obj, Mapping):
        inner = next(
            (obj[key]
             for key in ('state_dict', 'model', 'module') if isinstance(obj.get(key), Mapping)),
            None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{source} holds a {type(obj).__name__}, not a state dict')
    state_dict = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state_dict:
        raise CheckpointError(f'{source} contains no tensors (keys: {_listing(list(obj))})')
    # DistributedDataParallel wraps every key in 'module.'
    while all(key.startswith('module.') for key in state_dict):
        state_dict = strip_prefix(state_dict, 'module.')
    return state_dict


def load_state_dict_file(checkpoint: str | os.PathLike) -> StateDict:
    """Resolve (download), read and unwrap ``checkpoint`` into a flat ``{key: tensor}`` dict."""
    path = resolve_checkpoint(checkpoint)
    return unwrap_state_dict(read_checkpoint(path), source=str(path))


def strip_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


# ------------------------------------------------------------------------------------------------ conversion
def detect_layout(state_dict: StateDict, family: str, source: str = 'checkpoint') -> Layout:
    """The first registered layout of ``family`` that recognises ``state_dict``; a clear error otherwise."""
    if family not in _LAYOUTS:
        raise CheckpointError(f'no checkpoint layouts registered for family {family!r}; '
                              f'known families: {sorted(_LAYOUTS)}')
    for layout in _LAYOUTS[family]:
        if layout.detect(state_dict):
            return layout
    others = [
        f'{layout.family}/{layout.name}' for layout in registered_layouts()
        if layout.family != family and layout.detect(state_dict)
    ]
    hint = (f'it looks like a {others[0]} checkpoint: build the matching backbone instead'
            if others else
            f'expected one of the {family} layouts {[layout.name for layout in _LAYOUTS[family]]}')
    raise UnknownLayoutError(f'{source} is not a {family} checkpoint ({hint}); its first keys are '
                             f'{_listing(sorted(state_dict))}')


def convert_state_dict(state_dict: StateDict,
                       backbone: nn.Module,
                       family: str,
                       source: str = 'checkpoint') -> tuple[StateDict, Layout, list[str]]:
    """Detect the layout of ``state_dict`` and convert it into pvt_det's classifier namespace.

    A detector/segmentor checkpoint (backbone under ``'backbone.'`` next to neck and heads) whose backbone is in
    a known layout is converted too; the third return value lists its non-backbone keys, which are not loaded.
    """
    outside: list[str] = []
    layout = next((entry for entry in _LAYOUTS.get(family, []) if entry.detect(state_dict)), None)
    inner = strip_prefix(state_dict, 'backbone.')
    if layout is None and inner:
        layout = next((entry for entry in _LAYOUTS[family] if entry.detect(inner)), None)
        if layout is not None:
            outside = sorted(key for key in state_dict if not key.startswith('backbone.'))
            state_dict = inner
    if layout is None:
        layout = detect_layout(state_dict, family, source)  # raises the explanatory error
    return _run_converter(layout, state_dict, backbone, source), layout, outside


def _run_converter(layout: Layout, state_dict: StateDict, backbone: nn.Module | None,
                   source: str) -> StateDict:
    try:
        converted = layout.convert(state_dict, backbone)
        if layout.norm_eps is not None and hasattr(backbone, 'follow_norm_eps'):
            backbone.follow_norm_eps(*layout.norm_eps)  # the one place every loading path passes through
        return converted
    except CheckpointError as error:
        raise CheckpointError(f'{source} ({layout.family} {layout.name} layout): {error}') from None
    except (KeyError, IndexError, RuntimeError, ValueError) as error:
        raise CheckpointError(
            f'{source} looks like the {layout.family} {layout.name} layout but cannot be converted: '
            f'{type(error).__name__}: {_first_line(error)}') from None


# Keys a converter returns outside 'backbone.' that a dense backbone inside a detector drops without a word:
# whai362's v1 detection backbone keeps the ImageNet model's stage-4 position embedding with its cls-token row
# (and no cls token), which the converters split off as 'cls_pos_embed'.
_DENSE_UNUSED = frozenset({'cls_pos_embed'})


def is_own_layout(state_dict: Mapping[str, Any], prefix: str = '') -> bool:
    """Whether every key under ``prefix`` already has pvt_det's names (all backbones keep theirs in ``stages``)."""
    own = prefix + 'stages.'
    return all(key.startswith(own) for key in state_dict if key.startswith(prefix))


def convert_backbone_keys(state_dict: MutableMapping[str, torch.Tensor],
                          prefix: str,
                          backbone: nn.Module,
                          family: str,
                          source: str = 'state dict') -> Layout | None:
    """Rename, in place, the keys of ``state_dict`` under ``prefix`` from any registered ``family`` layout to
    ``backbone``'s own parameter names; keys elsewhere are untouched.

    Returns the layout converted from, or ``None`` when there was nothing to do (no keys under ``prefix``, or
    already pvt_det's layout: a cheap name check, no tensor is touched). Classifier-only keys the converter
    yields (head, final norm, cls token) stay under ``prefix`` for the loader to report as unexpected, except the
    unused cls row of whai362's v1 detection backbones, which is dropped. Raises :class:`CheckpointError` for
    keys under ``prefix`` in no known layout, or that do not convert (e.g. a v1 position grid of another size).
    """
    keys = [key for key in state_dict if key.startswith(prefix)]
    if not keys or is_own_layout(state_dict, prefix):
        return None
    inner = {key[len(prefix):]: state_dict[key] for key in keys}
    layout = next((entry for entry in _LAYOUTS.get(family, []) if entry.detect(inner)), None) or \
        detect_layout(inner, family, f'{source} (keys under {prefix!r})' if prefix else source)
    converted = _run_converter(layout, inner, backbone, source)
    for key in keys:
        del state_dict[key]
    has_cls_token = 'cls_token' in converted
    for key, value in converted.items():
        if key.startswith('backbone.'):
            state_dict[prefix + key[len('backbone.'):]] = value
        elif not (key in _DENSE_UNUSED and not has_cls_token):
            state_dict[prefix + key] = value
    return layout


def load_pretrained(module: nn.Module,
                    checkpoint: str | os.PathLike | StateDict,
                    family: str,
                    prefix: str | None = None) -> LoadReport:
    """Load ``checkpoint`` (path, URL or state dict) of any registered ``family`` layout into ``module``.

    ``module`` is a backbone, or a classifier whose ``backbone`` attribute is the backbone. ``prefix`` selects a
    sub-dict first (mmengine's ``init_cfg=dict(type='Pretrained', prefix='backbone.')``). Loading is strict;
    see the module docstring for what is dropped when the target is a bare backbone.
    """
    if isinstance(checkpoint, Mapping):
        source, state_dict = 'state dict', unwrap_state_dict(checkpoint)
    else:
        path = resolve_checkpoint(checkpoint)
        source, state_dict = str(path), unwrap_state_dict(read_checkpoint(path), source=str(path))
    if prefix:
        state_dict = strip_prefix(state_dict, prefix)
        if not state_dict:
            raise CheckpointError(f'{source} has no keys starting with prefix {prefix!r}')

    backbone = module.backbone if isinstance(getattr(module, 'backbone', None),
                                             nn.Module) else module
    converted, layout, dropped = convert_state_dict(state_dict, backbone, family, source)
    if backbone is module:
        dropped += sorted(key for key in converted if not key.startswith('backbone.'))
        converted = strip_prefix(converted, 'backbone.')
    _check_fits(module, converted, source, layout)
    module.load_state_dict(converted, strict=True)
    if hasattr(module, 'weights_changed'):
        module.weights_changed()
    message = f'loaded {source} ({family} {layout.name} layout) into {type(module).__name__}'
    if dropped:
        message += f'; not loaded (classifier/detector-only keys): {_listing(dropped)}'
    print_log(message, logger='current')
    return LoadReport(source, layout.name, sorted(converted), dropped)


def _check_fits(module: nn.Module, state_dict: StateDict, source: str, layout: Layout) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f'{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}'
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if missing:
        problems.append(f'missing keys {_listing(missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_listing(unexpected)}')
    if mismatched:
        problems.append(f'shape mismatches {_listing(mismatched)}')
    arch = getattr(module, 'arch_name', None) or getattr(getattr(module, 'backbone', None),
                                                         'arch_name', None)
    raise CheckpointError(
        f'{source} ({layout.family} {layout.name} layout) does not fit {type(module).__name__}'
        f'{f"(arch={arch!r})" if arch else ""}: ' + '; '.join(problems) +
        '. Is it a checkpoint of another variant? Build the model with the arch the checkpoint was trained with.'
    )


def _listing(items: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ', '.join(str(item) for item in items[:limit])
    more = len(items) - limit
    return f'[{shown}{f", ... and {more} more" if more > 0 else ""}]'


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ''
