"""Where a model config consumes its backbone's feature maps, and what must agree with them.

The one place in the package that knows it: necks (FPN family, PAFPN, NAS-FPN, ChannelMapper,
DilatedEncoder, JPU, ...), heads that read the backbone without a neck (mmseg's decode and auxiliary
heads through ``in_index``, MaskFormer/Mask2Former pixel decoders, single-map heads), and what follows the
maps' number and strides (anchor/point generators, RoI extractors' ``featmap_strides``, decode heads'
``feature_strides``). Pre-flight (:mod:`pvt_det.config.preflight`) CHECKS a config with :func:`sites`; the
backbone swap (:mod:`pvt_det.config.swap`) REWRITES one with the same sites.

A :class:`Site` is one config value with the value the maps need there; ``expected is None`` marks a
mismatch that has no single right value (an ``in_index`` past the last map).
"""
from __future__ import annotations

from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from mmengine.config import Config

from .registries import registry

# Necks that take every backbone map (``in_channels`` lists them) and return ``num_outs`` maps of
# ``out_channels`` from ``start_level`` on, extra levels at twice the stride of the last.
FPN_LIKE = ('FPN', 'PAFPN', 'FPN_CARAFE', 'NASFPN', 'NASFCOS_FPN', 'FPG', 'RFP')
# Necks that take one map, the backbone's last (YOLOF's C5, CenterNet's).
SINGLE_MAP_NECKS = ('DilatedEncoder', 'CTResNetNeck')


@dataclass(frozen=True)
class Maps:
    """The feature maps one module hands to the next: width and stride of each, and who made them."""

    channels: tuple[int, ...]
    strides: tuple[int, ...] | None
    source: str


@dataclass(frozen=True)
class Site:
    """One config value that must agree with the maps a module is given.

    ``check`` is the pre-flight check that compares it (:data:`pvt_det.config.preflight.CONFIG_CHECKS`),
    ``path`` its place inside ``model``, ``message`` the one line that explains a mismatch and its fix.
    """

    check: str
    key: str
    path: tuple[str | int, ...]
    value: Any
    expected: Any
    message: str

    @property
    def agrees(self) -> bool:
        return self.expected is not None and _same(self.value, self.expected)


def _same(value: Any, expected: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(expected, (list, tuple)):
        return list(value) == list(expected)
    return value == expected


def model_cfg(cfg: Config | dict) -> dict:
    """The model dict of a config; tools/test.py --tta wraps it (``DetTTAModel(module=...)``)."""
    model = cfg.get('model') or {}
    while isinstance(model.get('module'), dict) and 'backbone' not in model:
        model = model['module']
    return model


def node_type(node: Any) -> str:
    return str(node.get('type', '')).split('.')[-1] if isinstance(node, dict) else ''


def walk(node: Any, key: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, dict]]:
    """Every dict in a config tree with its key, depth first."""
    if isinstance(node, dict):
        yield key, node
        for name, value in node.items():
            if name not in skip:
                yield from walk(value, f'{key}.{name}', skip)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from walk(value, f'{key}[{index}]', skip)


# ============================================================================================ measuring
def backbone_maps(default_scope: str, task: str, backbone_cfg: dict, device: str = 'meta') -> Maps | None:
    """Widths and strides of the backbone's outputs, from a copy built on the meta device.

    pvt_det's backbones report ``out_channels``/``out_strides``; others (mmdet's ResNet, ...) run one forward
    pass of a meta tensor, which computes shapes only. ``None`` when the backbone cannot be built there
    (``device='cpu'`` builds a real one: for backbones whose constructor reads tensor values, e.g. mmseg's MiT).
    """
    import torch
    from mmengine.registry import DefaultScope
    backbone_cfg = deepcopy(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)  # building loads nothing anyway; keep the copy self-contained
    backbone_cfg.pop('pretrained', None)
    in_channels = backbone_cfg.get('in_channels', 3)
    try:
        with DefaultScope.overwrite_default_scope(default_scope), torch.device(device), torch.no_grad():
            backbone = registry(task, 'MODELS').build(backbone_cfg)
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
    return Maps(tuple(int(c) for c in channels), strides, f'the backbone {name}')


def neck_maps(task: str, neck: dict, inputs: Maps) -> Maps | None:
    """The maps a neck returns for ``inputs``; ``None`` for a neck whose outputs are not known here."""
    kind = node_type(neck)
    out_channels, num_outs = neck.get('out_channels'), neck.get('num_outs')
    strides = inputs.strides
    if kind in SINGLE_MAP_NECKS and isinstance(out_channels, int):
        return Maps((out_channels,), strides[-1:] if strides else None, f'the neck ({kind})')
    if kind == 'JPU':
        # JPU passes maps start..end-2 through and replaces the last by the fused map, at the first's stride.
        start, end = neck.get('start_level', 0), neck.get('end_level', -1)
        end = len(inputs.channels) if end == -1 else end
        fused = neck.get('mid_channels', 512) * len(neck.get('dilations', (1, 2, 4, 8)))
        levels = (list(strides[start:end - 1]) + [strides[start]]) if strides else None
        return Maps(tuple(inputs.channels[start:end - 1]) + (fused,), tuple(levels) if levels else None,
                    'the neck (JPU)')
    if not isinstance(out_channels, int):
        return None
    if kind in FPN_LIKE and isinstance(num_outs, int):
        start, end = neck.get('start_level', 0), neck.get('end_level', -1)
        if end == -1 or (task == 'det' and end == len(inputs.channels) - 1):
            end = len(inputs.channels)
        elif task == 'det':
            end += 1  # mmdet's end_level is inclusive, mmseg's exclusive
        levels = list(strides[start:end]) if strides else None
    elif kind == 'ChannelMapper':
        num_outs = num_outs or len(inputs.channels)
        levels = list(strides) if strides else None
    else:
        return None
    if levels:  # extra levels: stride-2 convs or max-pools on top of the last one
        while len(levels) < num_outs:
            levels.append(levels[-1] * 2)
    return Maps((out_channels,) * num_outs, tuple(levels[:num_outs]) if levels else None,
                f'the neck ({kind}, num_outs={num_outs})')


def necks(model: dict) -> list[tuple[str, tuple[str | int, ...], dict]]:
    """``(key, path, neck)`` of each neck, in the order mmdet chains them."""
    neck = model.get('neck')
    if isinstance(neck, dict):
        return [('model.neck', ('neck',), neck)]
    if isinstance(neck, (list, tuple)):
        return [(f'model.neck[{i}]', ('neck', i), one) for i, one in enumerate(neck) if isinstance(one, dict)]
    return []


def seg_heads(model: dict) -> Iterator[tuple[str, tuple[str | int, ...], dict]]:
    """mmseg's decode and auxiliary heads (one or a list), with key and path."""
    for name in ('decode_head', 'auxiliary_head'):
        head = model.get(name)
        heads = head if isinstance(head, (list, tuple)) else [head]
        for index, one in enumerate(heads):
            if isinstance(one, dict):
                key, path = (f'model.{name}', (name,)) if isinstance(head, dict) else \
                    (f'model.{name}[{index}]', (name, index))
                # K-Net's IterativeDecodeHead reads the maps through the head it wraps.
                if isinstance(one.get('kernel_generate_head'), dict):
                    key, path, one = f'{key}.kernel_generate_head', path + ('kernel_generate_head',), \
                        one['kernel_generate_head']
                yield key, path, one


def pixel_decoder_heads(model: dict, task: str) -> Iterator[tuple[str, tuple[str | int, ...], dict]]:
    """MaskFormer/Mask2Former heads: their pixel decoder reads every map the backbone gives."""
    heads = [('model.panoptic_head', ('panoptic_head',), model.get('panoptic_head'))]
    if task == 'seg':
        heads += list(seg_heads(model))
    for key, path, head in heads:
        if isinstance(head, dict) and isinstance(head.get('pixel_decoder'), dict):
            yield key, path, head


# ============================================================================================ sites
def sites(model: dict, task: str, backbone: Maps) -> list[Site]:
    """Every value in ``model`` that must agree with the backbone's maps ``backbone``, in model order:
    the first neck's inputs (or the heads fed by the backbone), then strides and head inputs after the
    neck. Stops following the maps at a neck whose outputs are not known here."""
    found: list[Site] = []
    maps = backbone
    chain = necks(model)
    if chain:
        key, path, neck = chain[0]
        found += _neck_input_sites(key, path, neck, maps)
        maps = neck_maps(task, neck, maps)
        if maps is None:
            return found
        # Later necks of a chain (BFP, DyHead) keep the number, widths and strides of the maps.
    elif model.get('neck') is not None:
        return found
    if maps.strides is not None:
        found += _stride_sites(model, task, maps)
    found += _head_input_sites(model, task, maps)
    return found


def _neck_input_sites(key: str, path: tuple, neck: dict, maps: Maps) -> list[Site]:
    in_channels = neck.get('in_channels')
    count, channels = len(maps.channels), list(maps.channels)
    if isinstance(in_channels, (list, tuple)):
        expected = tuple(channels) if isinstance(in_channels, tuple) else channels
        return [Site('neck_in_channels', f'{key}.in_channels', path + ('in_channels',), in_channels, expected,
                     f'{key}.in_channels={list(in_channels)} but {maps.source} outputs {count} maps of '
                     f'{channels} channels: set {key}.in_channels={channels} (or change '
                     f'model.backbone.out_indices)')]
    if isinstance(in_channels, int) and node_type(neck) in SINGLE_MAP_NECKS:
        return [Site('neck_in_channels', f'{key}.in_channels', path + ('in_channels',), in_channels,
                     channels[-1], f'{key}.in_channels={in_channels} but the last map of {maps.source} '
                     f'(the one {node_type(neck)} reads) has {channels[-1]} channels: set '
                     f'{key}.in_channels={channels[-1]}')]
    return []


def _stride_value(stride: Any) -> Any:
    if isinstance(stride, (list, tuple)) and len(stride) == 2 and stride[0] == stride[1]:
        return stride[0]  # (w, h) strides as AnchorGenerator takes them
    return stride


def _stride_sites(model: dict, task: str, maps: Maps) -> list[Site]:
    found = []
    expected = list(maps.strides)
    heads = {name: value for name, value in model.items() if name not in ('backbone', 'neck')}
    for key, node in walk(heads, 'model', skip=('train_cfg', 'test_cfg', 'init_cfg')):
        path = _path_of(key)
        if node_type(node).endswith('AnchorGenerator') and isinstance(node.get('strides'), (list, tuple)):
            strides = [_stride_value(s) for s in node['strides']]
            found.append(Site('strides', f'{key}.strides', path + ('strides',), strides, expected,
                              f'{key}.strides={strides} but the head gets {len(expected)} maps from '
                              f'{maps.source} with strides {expected}: set {key}.strides={expected}'))
        featmap_strides = node.get('featmap_strides')
        if isinstance(featmap_strides, (list, tuple)):
            right = expected[:len(featmap_strides)]
            found.append(Site('strides', f'{key}.featmap_strides', path + ('featmap_strides',),
                              list(featmap_strides), right,
                              f'{key}.featmap_strides={list(featmap_strides)} but {maps.source} gives maps '
                              f'with strides {expected}: set {key}.featmap_strides={right}'))
    if task == 'seg':
        for key, path, head in seg_heads(model):
            feature_strides, in_index = head.get('feature_strides'), head.get('in_index')
            if isinstance(feature_strides, (list, tuple)) and isinstance(in_index, (list, tuple)) and \
                    all(isinstance(i, int) and -len(expected) <= i < len(expected) for i in in_index):
                right = [expected[i] for i in in_index]
                found.append(Site('strides', f'{key}.feature_strides', path + ('feature_strides',),
                                  list(feature_strides), right,
                                  f'{key}.feature_strides={list(feature_strides)} but the maps at in_index '
                                  f'{list(in_index)} of {maps.source} have strides {right}: set '
                                  f'{key}.feature_strides={right}'))
    for key, path, head in pixel_decoder_heads(model, task):
        strides = head.get('strides')
        if isinstance(strides, (list, tuple)):
            found.append(Site('strides', f'{key}.strides', path + ('strides',), list(strides), expected,
                              f'{key}.strides={list(strides)} but its pixel decoder reads the maps of '
                              f'{maps.source} with strides {expected}: set {key}.strides={expected}'))
    return found


def _path_of(key: str) -> tuple[str | int, ...]:
    """``'model.roi_head.bbox_head[2]'`` -> ``('roi_head', 'bbox_head', 2)``."""
    path: list[str | int] = []
    for part in key.split('.')[1:]:
        name, *indices = part.replace(']', '').split('[')
        path.append(name)
        path += [int(i) for i in indices]
    return tuple(path)


def _head_input_sites(model: dict, task: str, maps: Maps) -> list[Site]:
    found = []
    count, channels = len(maps.channels), list(maps.channels)
    decoders = {key for key, _, _ in pixel_decoder_heads(model, task)}
    for key, path, head in pixel_decoder_heads(model, task):
        in_channels = head.get('in_channels')
        if isinstance(in_channels, (list, tuple)):
            found.append(Site('head_inputs', f'{key}.in_channels', path + ('in_channels',), list(in_channels),
                              channels, f'{key}.in_channels={list(in_channels)} but its pixel decoder reads '
                              f'{count} maps of {channels} channels from {maps.source}: set '
                              f'{key}.in_channels={channels}'))
    if task == 'seg':
        for key, path, head in seg_heads(model):
            if key not in decoders:
                found += _seg_head_input_sites(key, path, head, maps)
            if isinstance(head.get('c1_in_channels'), int) and head['c1_in_channels'] > 0:
                # DeepLabV3+'s decoder also reads the first map (inputs[0]) whatever in_index says.
                found.append(Site('head_inputs', f'{key}.c1_in_channels', path + ('c1_in_channels',),
                                  head['c1_in_channels'], channels[0],
                                  f'{key}.c1_in_channels={head["c1_in_channels"]} but the first map of '
                                  f'{maps.source} (its low-level input) has {channels[0]} channels: set '
                                  f'{key}.c1_in_channels={channels[0]}'))
        return found
    # mmdet: one-stage heads and the RPN take every map; their in_channels is the maps' (one) width.
    widths = set(channels)
    if len(widths) != 1:
        return found
    width = widths.pop()
    for name in ('bbox_head', 'rpn_head'):
        head = model.get(name)
        head_width = head.get('in_channels') if isinstance(head, dict) else None
        if isinstance(head_width, int) and not isinstance(head_width, bool):
            found.append(Site('head_inputs', f'model.{name}.in_channels', (name, 'in_channels'), head_width,
                              width, f'model.{name}.in_channels={head_width} but {maps.source} gives '
                              f'{count} maps of {width} channels: set model.{name}.in_channels={width}'))
    for key, node in walk(model.get('roi_head'), 'model.roi_head', skip=('train_cfg', 'test_cfg')):
        if key.endswith('roi_extractor') and isinstance(node.get('out_channels'), int):
            found.append(Site('head_inputs', f'{key}.out_channels', _path_of(key) + ('out_channels',),
                              node['out_channels'], width, f'{key}.out_channels={node["out_channels"]} but '
                              f'{maps.source} gives maps of {width} channels: set {key}.out_channels={width}'))
    return found


def _seg_head_input_sites(key: str, path: tuple, head: dict, maps: Maps) -> list[Site]:
    in_index, in_channels = head.get('in_index', -1), head.get('in_channels')
    indices = list(in_index) if isinstance(in_index, (list, tuple)) else [in_index]
    count = len(maps.channels)
    bad = [i for i in indices if not isinstance(i, int) or not -count <= i < count]
    if bad:
        return [Site('head_inputs', f'{key}.in_index', path + ('in_index',), in_index, None,
                     f'{key}.in_index={in_index} but {maps.source} gives {count} maps: use indices in '
                     f'0..{count - 1}')]
    # resize_concat too: its in_channels lists the widths it concatenates.
    selected = [maps.channels[i] for i in indices]
    widths = list(in_channels) if isinstance(in_channels, (list, tuple)) else [in_channels]
    if not all(isinstance(w, int) for w in widths):
        return []
    right = selected if isinstance(in_channels, (list, tuple)) else selected[0]
    return [Site('head_inputs', f'{key}.in_channels', path + ('in_channels',), in_channels, right,
                 f'{key}.in_channels={in_channels} but the maps at in_index {in_index} of {maps.source} '
                 f'have {selected} channels: set {key}.in_channels={right}')]


def readers(model: dict, task: str, count: int = 4) -> list[str]:
    """The config keys through which ``model`` reads its backbone's maps (for messages)."""
    dummy = Maps(tuple(range(1, count + 1)), None, 'the backbone')
    return [site.key for site in sites(model, task, dummy)
            if site.check in ('neck_in_channels', 'head_inputs') and site.key.endswith('in_channels')]
