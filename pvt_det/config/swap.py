"""The drop-in swap: any mmdet/mmseg model config with another backbone (a ResNet, mmseg's MiT, ...) gets a
pvt_det backbone, written as a short leaf config that says only what changes, each change with why.

``swap_backbone(cfg, 'pvt_v2_b0', base='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')`` returns a
:class:`Swap` (the leaf text, the changes, the merged Config). What it rewrites:

* the backbone, with the stages the model read from the old one (``out_indices``);
* every place the model reads the backbone's maps, from :func:`pvt_det.config.feature_maps.sites` (the
  knowledge pre-flight checks with): neck or head widths, strides that follow the maps;
* ResNet-only settings: a model-level ``pretrained`` (mmseg), ``frozen_stages``/``norm_eval``/``style``,
  the stride change of a dilated ResNet (said, not hidden);
* caffe/BGR input normalisation -> ImageNet RGB (PVT's ImageNet weights were trained on it);
* the optimizer -> the PVT papers' AdamW recipe (unless ``keep_optimizer``); ``auto_scale_lr`` is kept.

What has no faithful equivalent is refused with one line naming the key (:class:`pvt_det.cli.ToolError`).
"""
from __future__ import annotations

import functools
import re
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmengine.config import Config

from ..cli import ToolError
from .feature_maps import Maps, backbone_maps, model_cfg, node_type, sites
from .loading import register_scope, task_of

# The official PVT releases (whai362/PVT, branch v2): every PVT v1 / v2 ImageNet file is <name>.pth there,
# the URLs configs/_base_/models/pvt_backbones.py names.
PVT_RELEASES = 'https://github.com/whai362/PVT/releases/download/v2'
# Microsoft's CvT ImageNet-1k weights on Hugging Face (configs/*cvt_13* use cvt-13's).
CVT_RELEASES = {'13': 'https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin',
                '21': 'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin'}
# SegFormer's MiT ImageNet weights: the URL mmseg's own segformer config of that size names.
MIT_CONFIG = 'segformer/segformer_{arch}_8xb2-160k_ade20k-512x512.py'

IMAGENET_RGB = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
# The PVT papers' detection and segmentation recipe (whai362/PVT detection/ and segmentation/ configs):
# AdamW, lr 1e-4 (RetinaNet, Semantic FPN) or 2e-4 (Mask R-CNN), weight decay 1e-4 at 16 images per step;
# no decay on norms and position embeddings as their 3x configs (configs/_base_/schedules/schedule_3x.py).
RECIPE_WEIGHT_DECAY = 1e-4
NO_DECAY = {'pos_embed': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0)}
# Backbones that are a whole network around a ResNet, or whose structure other modules depend on.
_STRUCTURAL = {
    'TridentResNet': "its trident branches (one shared stage run at three dilations) are what "
                     "model.roi_head (TridentRoIHead) reads; PVT has no branches",
    'DetectoRS_ResNet': "model.neck (RFP) feeds its outputs back into ResNet's stages (rfp_inplanes); "
                        "PVT's stages take no feedback",
}
_RESNET_SETTINGS = ('depth', 'num_stages', 'strides', 'dilations', 'style', 'deep_stem', 'avg_down',
                    'frozen_stages', 'norm_cfg', 'norm_eval', 'stem_channels', 'base_channels',
                    'contract_dilation', 'zero_init_residual', 'groups', 'base_width')


@dataclass(frozen=True)
class Change:
    """One key the swap sets, its new value and why (the leaf config's comment, the tool's stdout)."""

    key: str
    value: Any
    why: str


@dataclass
class Swap:
    """The leaf config's text, its changes in order, and the merged config it stands for."""

    text: str
    changes: list[Change]
    config: Config


# ============================================================================================ archs
@functools.cache
def backbone_names() -> dict[str, tuple[str, str]]:
    """Every backbone the package builds, by its name: ``'pvt_v2_b0' -> ('PVTv2', 'b0')``.

    From the registered classifiers (:func:`pvt_det.models.classifiers.classifier_names`), each built on the
    meta device to read its backbone's type and arch: archs added later appear here by themselves.
    """
    import torch
    from pvt_det.models.classifiers import build_classifier, classifier_names
    names = {}
    with torch.device('meta'):
        for name in classifier_names():
            backbone = build_classifier(name, num_classes=0).backbone
            names[name] = (type(backbone).__name__, backbone.arch_name)
    return names


def imagenet_checkpoint(name: str) -> str | None:
    """The URL of ``name``'s ImageNet weights, the one place the package knows them; ``None`` if unknown."""
    backbone_type, arch = backbone_names()[name]
    if arch.startswith('mit_'):
        config = _package_config('mmseg', MIT_CONFIG.format(arch=arch.replace('_', '-')))
        found = re.search(r"^checkpoint\s*=\s*'([^']+)'", config.read_text(), re.M) if config.is_file() else None
        return found.group(1) if found else None
    if backbone_type in ('PVT', 'PVTv2'):
        return f'{PVT_RELEASES}/{name}.pth'
    if backbone_type == 'CvT':
        return CVT_RELEASES.get(arch)
    return None


# The pattern mmengine's Config checks a `package::folder/file` name against (_get_package_and_cfg_path).
MMENGINE_PACKAGE_PATH = re.compile(r'\w*::\w*/\w*')


def _package_config(package: str, relative: str) -> Path:
    import importlib
    return Path(importlib.import_module(package).__file__).parent / '.mim' / 'configs' / relative


def resolve_source(source: str) -> Path:
    """The file of ``path`` or ``mmdet::rel/path.py`` / ``mmseg::rel/path.py``."""
    if '::' in source:
        package, relative = source.split('::', 1)
        if package not in ('mmdet', 'mmseg'):
            raise ToolError(f'{source}: only mmdet:: and mmseg:: configs can be named by package')
        path = _package_config(package, relative)
        if MMENGINE_PACKAGE_PATH.match(source) is None:  # the leaf's `_base_ = SRC` could never be read
            raise ToolError(f"{source}: mmengine cannot inherit a config by this name (its package paths allow "
                            f"only letters, digits and '_' in the folder name); pass the file's path instead: "
                            f'{path}')
    else:
        path = Path(source)
    if not path.is_file():
        raise ToolError(f'config file not found: {source}. Pass a config path or an installed one such as '
                        'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')
    return path


# ============================================================================================ the swap
def swap_backbone(cfg: Config, arch: str, base: str | None = None, keep_optimizer: bool = False,
                  pretrained: str | None = None) -> Swap:
    """Swap ``cfg``'s backbone for ``arch`` (a name of :func:`backbone_names`).

    ``base`` is what the leaf's ``_base_`` names (default: ``cfg.filename``); ``pretrained`` a checkpoint
    path or URL for the backbone, ``'none'`` to train it from scratch, ``None`` for its ImageNet weights.
    Raises a one-line ToolError naming the key when the model has no faithful PVT equivalent.
    """
    import pvt_det.models  # noqa: F401  (registers PVT / PVTv2 / CvT)
    task = task_of(cfg)
    register_scope(cfg)
    names = backbone_names()
    if arch not in names:
        raise ToolError(f'unknown backbone {arch!r}; the package builds: {", ".join(names)}')
    source = cfg.to_dict()
    model = source.get('model') or {}
    old = model.get('backbone')
    if not isinstance(old, dict) or model_cfg(source) is not model:
        raise ToolError("model.backbone: the config has no backbone dict directly under model "
                        f"(model.type={model.get('type')!r}); the swap rewrites a detector or segmentor")
    _refuse_without_equivalent(model)
    old_maps = backbone_maps(source.get('default_scope'), task, old) or \
        backbone_maps(source.get('default_scope'), task, old, device='cpu')  # e.g. .item() in __init__
    if old_maps is None:
        raise ToolError(f"model.backbone (type {old.get('type')!r}) cannot be built to measure its maps; "
                        'swap it by hand (docs/swap_resnet.md)')
    backbone_type, backbone_arch = names[arch]
    stages = old.get('out_indices', tuple(range(len(old_maps.channels))))
    stages = tuple(stages) if isinstance(stages, (list, tuple)) else (stages,)
    new = dict(type=backbone_type, arch=backbone_arch, out_indices=stages, drop_path_rate=0.1)
    for kept in ('in_channels', 'with_cp') + (('norm_eval',) if backbone_type == 'CvT' else ()):
        if kept in old:
            new[kept] = old[kept]
    new_maps = _new_maps(source, task, new, arch, stages)

    edits: list[tuple[tuple, Any, str]] = []  # (path from the config root, value, why)
    edits.append((('custom_imports',), _custom_imports(source), 'registers PVT, PVTv2 and CvT in mmdet/mmseg'))
    backbone_why = _backbone_why(old, old_maps, new_maps, arch)
    checkpoint = _checkpoint(arch, pretrained)
    new['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
    edits.append((('model', 'backbone'), dict(_delete_=True, **new), backbone_why))
    if model.get('pretrained') is not None:
        edits.append((('model', 'pretrained'), None, f"was {model['pretrained']!r}, the old backbone's "
                      'weights passed by the segmentor; the PVT weights are model.backbone.init_cfg'))
    for site in sites(model, task, new_maps):
        if site.expected is None:
            raise ToolError(f'{site.message} (after the swap to {arch})')
        if not site.agrees:
            edits.append((('model',) + site.path, site.expected,
                          f'{_reads(site)} {_describe(new_maps, site)} (was {site.value!r})'))
    edits += _normalisation_edits(model)
    if not keep_optimizer:
        edits += _optimizer_edits(source, model)

    swapped = deepcopy(source)
    for path, value, _ in edits:
        _set(swapped, path, value)
    _check_agrees(swapped, task, new_maps, arch)
    changes = [Change(_key(path), value, why) for path, value, why in edits]
    base = base or cfg.filename
    text = _leaf_text(base, arch, swapped, edits, keep_optimizer)
    merged = Config(deepcopy(source))
    merged.merge_from_dict(_overrides(swapped, edits)[0])
    return Swap(text, changes, merged)


def _refuse_without_equivalent(model: dict) -> None:
    backbone = model['backbone']
    kind = node_type(backbone)
    if kind in _STRUCTURAL:
        raise ToolError(f'model.backbone.type={kind!r}: {_STRUCTURAL[kind]}; no faithful swap exists')
    if isinstance(backbone.get('backbone_cfg'), dict):
        raise ToolError(f'model.backbone.type={kind!r} is a whole network around model.backbone.backbone_cfg '
                        f'(its branches and fusion modules are built for a ResNet); no faithful swap exists')
    if backbone.get('dcn') is not None or any(backbone.get('stage_with_dcn') or ()):
        raise ToolError('model.backbone.dcn: deformable convolutions inside the ResNet stages have no PVT '
                        'equivalent (swap the dcn-free config of this family instead)')
    if backbone.get('plugins'):
        raise ToolError('model.backbone.plugins: modules inserted into ResNet blocks (attention, context, '
                        '...) have no place in PVT blocks (swap the plugin-free config of this family instead)')
    roi_head = model.get('roi_head')
    if isinstance(roi_head, dict) and isinstance(roi_head.get('shared_head'), dict):
        raise ToolError(f"model.roi_head.shared_head ({node_type(roi_head['shared_head'])}) is ResNet's stage "
                        '4 run on each RoI (a C4 detector); PVT has no such stage (swap the FPN config of '
                        'this family instead)')
    if node_type(model.get('neck')) == 'RFP':
        raise ToolError("model.neck.type='RFP' feeds its outputs back into the backbone's stages; PVT's "
                        'stages take no feedback')


def _new_maps(source: dict, task: str, new: dict, arch: str, stages: tuple) -> Maps:
    import torch
    from pvt_det.models.classifiers import build_classifier
    with torch.device('meta'):
        num_stages = build_classifier(arch, num_classes=0).backbone.num_stages
    missing = [i for i in stages if not isinstance(i, int) or not 0 <= i < num_stages]
    if missing:
        raise ToolError(f'model.backbone.out_indices={stages}: the model reads stage(s) {missing} of the old '
                        f'backbone but {arch} has {num_stages} stages (0..{num_stages - 1}); no map to give it')
    maps = backbone_maps(source.get('default_scope'), task, new)
    if maps is None:
        raise ToolError(f'{arch} ({new["type"]}) could not be built on the meta device')
    return maps


def _backbone_why(old: dict, old_maps: Maps, new_maps: Maps, arch: str) -> str:
    why = (f'{arch} in place of {old.get("type")}: maps of {list(new_maps.channels)} channels at strides '
           f'{list(new_maps.strides or ())}')
    if old_maps.strides and new_maps.strides and list(old_maps.strides) != list(new_maps.strides):
        why += (f'; the old maps had strides {list(old_maps.strides)} (dilated stages), so the heads now read '
                'coarser maps (outputs are still resized to the input)')
    dropped = [f'{key}={old[key]!r}' for key in ('frozen_stages', 'norm_eval')
               if key in old and old[key] not in (-1, False)]
    if dropped:
        why += f'; dropped {", ".join(dropped)}: the PVT papers train every stage and PVT has no BatchNorm'
    return why


def _checkpoint(arch: str, pretrained: str | None) -> str | None:
    if pretrained is not None:
        return None if pretrained.lower() == 'none' else pretrained
    url = imagenet_checkpoint(arch)
    if url is None:
        raise ToolError(f'no ImageNet checkpoint of {arch} is known to pvt_det: pass --pretrained FILE|URL, '
                        'or --pretrained none to train it from scratch')
    return url


def _custom_imports(source: dict) -> dict:
    imports = dict(source.get('custom_imports') or dict(imports=[], allow_failed_imports=False))
    listed = imports.get('imports') or []
    listed = [listed] if isinstance(listed, str) else list(listed)  # mmseg's Mask2Former: 'mmdet.models'
    imports['imports'] = listed + [name for name in ('pvt_det',) if name not in listed]
    imports.setdefault('allow_failed_imports', False)
    return imports


def _reads(site) -> str:
    return {'neck_in_channels': 'the neck reads', 'head_inputs': 'the head reads',
            'strides': 'the maps come'}.get(site.check, 'reads')


def _describe(maps: Maps, site) -> str:
    if site.check == 'strides':
        return f'at strides {site.expected} from {maps.source}'
    return f'{site.expected} channels from {maps.source}'


def _normalisation_edits(model: dict) -> list[tuple[tuple, Any, str]]:
    preprocessor = model.get('data_preprocessor')
    if not isinstance(preprocessor, dict):
        return []
    std, bgr = preprocessor.get('std'), preprocessor.get('bgr_to_rgb', False)
    caffe = isinstance(std, (list, tuple)) and all(abs(s - 1) < 1e-6 for s in std)
    if not caffe and bgr:
        return []
    was = f"mean={preprocessor.get('mean')}, std={std}, bgr_to_rgb={bgr}"
    why = f'ImageNet RGB normalisation, as the PVT weights were trained (was caffe/BGR: {was})'
    return [(('model', 'data_preprocessor', key), value, why) for key, value in IMAGENET_RGB.items()]


def _optimizer_edits(source: dict, model: dict) -> list[tuple[tuple, Any, str]]:
    old = source.get('optim_wrapper') or {}
    two_stage = isinstance(model.get('roi_head'), dict)
    lr = 2e-4 if two_stage else 1e-4
    wrapper = dict(_delete_=True, type=old.get('type', 'OptimWrapper'),
                   optimizer=dict(type='AdamW', lr=lr, weight_decay=RECIPE_WEIGHT_DECAY),
                   paramwise_cfg=dict(custom_keys=deepcopy(NO_DECAY)))
    kept = [key for key in ('clip_grad', 'loss_scale', 'accumulative_counts', 'dtype')
            if old.get(key) is not None]
    for key in kept:
        wrapper[key] = old[key]
    optimizer = old.get('optimizer') or {}
    was = f"{optimizer.get('type')} lr={optimizer.get('lr')}"
    why = (f"the PVT papers' recipe: AdamW lr {lr:g} ({'two-stage' if two_stage else 'one-stage/segmentor'}), "
           f'weight decay {RECIPE_WEIGHT_DECAY:g}, none on norms and position embeddings (was {was}'
           + (f'; kept {", ".join(kept)}' if kept else '') + '); --keep-optimizer keeps the old one')
    return [(('optim_wrapper',), wrapper, why)]


def _check_agrees(swapped: dict, task: str, maps: Maps, arch: str) -> None:
    for site in sites(swapped['model'], task, maps):
        if not site.agrees:  # a site the rewrite could not reach: say so rather than write a broken config
            raise ToolError(f'{site.message} (after the swap to {arch})')


# ============================================================================================ writing
def _key(path: tuple) -> str:
    key = ''
    for part in path:
        key += f'[{part}]' if isinstance(part, int) else (f'.{part}' if key else part)
    return key


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def _set(node: dict, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = deepcopy(value)


def _overrides(swapped: dict, edits: list[tuple[tuple, Any, str]]) -> tuple[dict, dict]:
    """The nested dict of what the leaf sets and the comment of each override path. mmengine merges
    dicts key by key but replaces lists whole, so a change inside a list writes the whole (changed) list."""
    overrides: dict = {}
    comments: dict[tuple, list[str]] = {}
    for path, _, why in edits:
        cut = next((i for i, part in enumerate(path) if isinstance(part, int)), len(path))
        at = path[:cut]
        value = _get(swapped, at)
        _set(overrides, at, _Leaf(value))
        comments.setdefault(at, [])
        if why not in comments[at]:
            comments[at].append(why)
    return _unwrap(overrides), comments


class _Leaf:
    def __init__(self, value: Any) -> None:
        self.value = value


def _unwrap(node: Any) -> Any:
    if isinstance(node, _Leaf):
        return deepcopy(node.value)
    return {key: _unwrap(value) for key, value in node.items()}


def _leaf_text(base: str, arch: str, swapped: dict, edits: list, keep_optimizer: bool) -> str:
    overrides, comments = _overrides(swapped, edits)
    lines = [f'# {arch} in place of the backbone of {base}',
             '# (tools/swap_backbone.py; docs/swap_resnet.md): only what changes, each with why.' +
             (" The optimizer is the source's (--keep-optimizer)." if keep_optimizer else ''),
             f'_base_ = {base!r}']
    for name, value in overrides.items():
        lines += _render(name, value, (name,), comments, 0, top=True)
    return '\n'.join(lines) + '\n'


def _render(name: str, value: Any, path: tuple, comments: dict, depth: int, top: bool = False) -> list[str]:
    """``name=value,  # why``; the dicts of the first two levels (``model``, ``model.backbone``, ...) one
    key per line, so that the reader sees each change with its comment."""
    pad, sep, tail = '    ' * depth, (' = ' if top else '='), ('' if top else ',')
    why = list(comments.get(path, []))
    if not (isinstance(value, dict) and len(path) <= 2):
        return [f'{pad}{name}{sep}{_py(value)}{tail}' + (f"  # {'; '.join(why)}" if why else '')]
    children = {key: comments.get(path + (key,)) for key in value}
    shared = {tuple(c) for c in children.values() if c}
    if not why and len(shared) == 1 and all(children.values()):  # one reason for every key: say it once
        why, comments = list(shared.pop()), {k: v for k, v in comments.items() if k[:len(path)] != path}
    lines = [f'{pad}{name}{sep}dict(' + (f"  # {'; '.join(why)}" if why else '')]
    for key, child in value.items():
        lines += _render(key, child, path + (key,), comments, depth + 1)
    lines.append(f'{pad}){tail}')
    return lines


def _py(value: Any) -> str:
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            return 'dict(' + ', '.join(f'{key}={_py(item)}' for key, item in value.items()) + ')'
        return '{' + ', '.join(f'{key!r}: {_py(item)}' for key, item in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_py(item) for item in value) + ']'
    if isinstance(value, tuple):
        return '(' + ', '.join(_py(item) for item in value) + (',)' if len(value) == 1 else ')')
    return repr(value)
