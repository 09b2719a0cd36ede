"""Fit a whole detector/segmentor checkpoint to a built model, or say in one line why it does not fit.

:func:`fit_state_dict` converts the part of every pvt_det backbone in the model (the keys under its prefix,
e.g. ``backbone.``) from whatever registered layout it is in, by the same :func:`convert_backbone_keys` the
backbones run when a state dict is loaded into them, then compares the result with ``model.state_dict()``:

* ``policy='exact'`` (evaluating, predicting, resuming): every key present, none extra, every shape equal;
  otherwise :class:`CheckpointError` naming the first mismatched keys and shapes and what to change.
* ``policy='finetune'`` (``load_from`` in training): the backbone, the neck and everything else that is not a
  head must fit exactly; head keys whose shape differs only in the first dimension (the class count), and head
  keys only one side has (another head design, e.g. Mask R-CNN's mask head), are skipped and listed.

mmdet 2.x DETR checkpoints (the official DETR-PVT release) get their head keys renamed to mmdet 3.x's when the
model is an mmdet 3.x DETR; other mmdet 2.x heads whose keys changed are refused with a message saying so.

The returned state dict is complete (skipped keys carry the model's own values), so loading it with
``strict=True`` succeeds and mmengine logs no missing keys on top of the one warning naming the skipped ones.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .backbones.base import PyramidBackbone
from .checkpoint import CheckpointError, StateDict, _listing, convert_backbone_keys
from .decode_heads.segformer_mlp_head import is_all_mlp_head_key

Policy = Literal['exact', 'finetune']
_LISTED = 4  # keys named per kind of misfit
POLICIES = ('exact', 'finetune')

__all__ = ['FitReport', 'fit_state_dict', 'fit_checkpoint_file', 'state_dict_of', 'unwrap_model', 'POLICIES']


@dataclass
class FitReport:
    """What :func:`fit_state_dict` did: the state dict to load, the layout each backbone came in, what it skipped."""

    state_dict: StateDict
    layouts: dict[str, str] = field(default_factory=dict)  # backbone prefix -> layout name
    skipped_class_count: list[str] = field(default_factory=list)  # head keys, first dim differs
    skipped_head_keys: list[str] = field(default_factory=list)  # head keys only one side has

    @property
    def skipped(self) -> list[str]:
        return self.skipped_class_count + self.skipped_head_keys

    def skipped_message(self, source: str) -> str:
        """The one warning a fine-tuning load gives: which head keys keep their fresh initialisation."""
        parts = []
        if self.skipped_class_count:
            parts.append(f'head keys whose class count differs {_listing(self.skipped_class_count)}')
        if self.skipped_head_keys:
            parts.append(f'head keys only one side has {_listing(self.skipped_head_keys)}')
        return (f'fine-tuning from {source}: backbone and neck loaded exactly; not loaded (kept at their '
                f'initialisation): ' + '; '.join(parts))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module mmengine loads a checkpoint into: DDP/FSDP wrappers and TTA models hold it as ``module``."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def state_dict_of(checkpoint: Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """The state dict mmengine loads from ``checkpoint`` (its ``state_dict`` entry, or the mapping itself)."""
    return checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint


def fit_checkpoint_file(model: nn.Module, filename: str, policy: Policy = 'exact') -> FitReport:
    """:func:`fit_state_dict` for a checkpoint file or URL, read as mmengine reads it (``tools/infer.py`` checks
    the file it gave mmdet's ``init_detector`` / mmseg's ``init_model``, which load without checking)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{filename} holds a {type(checkpoint).__name__}, not a checkpoint')
    return fit_state_dict(model, state_dict_of(checkpoint), policy, str(filename), meta=checkpoint.get('meta'))


def fit_state_dict(model: nn.Module,
                   state_dict: Mapping[str, torch.Tensor],
                   policy: Policy = 'exact',
                   source: str = 'checkpoint',
                   meta: Mapping[str, Any] | None = None) -> FitReport:
    """Convert ``state_dict`` (a whole-model checkpoint of any registered backbone layout) to ``model``'s names and
    check that it fits under ``policy`` (see the module docstring). ``meta`` (the checkpoint's ``meta``) only
    sharpens the error message (e.g. the mmdet version that wrote the file)."""
    if policy not in POLICIES:
        raise ValueError(f'policy={policy!r}; use one of {POLICIES}')
    model = unwrap_model(model)
    # mmengine strips a leading 'module.' from every key before loading (its default revise_keys)
    state = OrderedDict((re.sub(r'^module\.', '', key), value) for key, value in state_dict.items()
                        if isinstance(value, torch.Tensor))
    metadata = getattr(state_dict, '_metadata', None)
    expected = model.state_dict()
    upgraded = _upgrade_mmdet2_detr(state, expected)
    layouts = {'': 'mmdet 2.x DETR'} if upgraded else {}
    for name, module in model.named_modules():  # whole-model file layouts a module knows (GLPNHead: the hub's GLPN)
        if callable(getattr(module, 'adopt_model_keys', None)):
            module.adopt_model_keys(state, f'{name}.' if name else '')
    for name, module in model.named_modules():
        if isinstance(module, PyramidBackbone):
            prefix = f'{name}.' if name else ''
            layout = convert_backbone_keys(state, prefix, module, module.family, source)
            layouts[prefix] = layout.name if layout is not None else 'pvt_det'

    missing = [key for key in expected if key not in state and not key.endswith('num_batches_tracked')]
    unexpected = [key for key in state if key not in expected]
    mismatched = [key for key in expected if key in state and state[key].shape != expected[key].shape]

    report = FitReport(OrderedDict(), layouts)
    if policy == 'finetune':
        body_problems = [key for key in missing + unexpected + mismatched if not _is_head_key(key)]
        head_shapes = [key for key in mismatched if _is_head_key(key)]
        other_head_shapes = [key for key in head_shapes
                             if state[key].shape[1:] != expected[key].shape[1:]]
        if body_problems or other_head_shapes:
            # only what fine-tuning cannot skip is reported
            keep = set(body_problems) | set(other_head_shapes)
            _raise_misfit(model, source, meta, state, expected, [k for k in missing if k in keep],
                          [k for k in unexpected if k in keep], [k for k in mismatched if k in keep],
                          finetune=True)
        report.skipped_class_count = head_shapes
        report.skipped_head_keys = missing + unexpected
    elif missing or unexpected or mismatched:
        _raise_misfit(model, source, meta, state, expected, missing, unexpected, mismatched, finetune=False)

    skipped = set(report.skipped)
    for key, value in expected.items():  # the model's order; skipped/missing keys keep the model's values
        report.state_dict[key] = state[key] if key in state and key not in skipped else value
    if metadata is not None:
        report.state_dict._metadata = metadata  # BatchNorm's version check reads it
    return report


# mmdet 2.x's DETR kept its transformer and input projection inside the head, built from mmcv 1.x's
# BaseTransformerLayer (attentions / ffns / norms lists); mmdet 3.x moved them to the detector (encoder, decoder,
# query_embedding) with named sub-layers, and the input projection became the ChannelMapper neck.
_MMDET2_DETR_RENAMES = (
    (r'^bbox_head\.transformer\.(encoder|decoder)\.layers\.(\d+)\.attentions\.0\.', r'\1.layers.\2.self_attn.'),
    (r'^bbox_head\.transformer\.decoder\.layers\.(\d+)\.attentions\.1\.', r'decoder.layers.\1.cross_attn.'),
    (r'^bbox_head\.transformer\.(encoder|decoder)\.layers\.(\d+)\.ffns\.0\.', r'\1.layers.\2.ffn.'),
    (r'^bbox_head\.transformer\.(encoder|decoder)\.layers\.(\d+)\.norms\.', r'\1.layers.\2.norms.'),
    (r'^bbox_head\.transformer\.decoder\.post_norm\.', 'decoder.post_norm.'),
    (r'^bbox_head\.query_embedding\.', 'query_embedding.'),
    (r'^bbox_head\.input_proj\.', 'neck.convs.0.conv.'),
)


def _upgrade_mmdet2_detr(state: StateDict, expected: Mapping[str, torch.Tensor]) -> bool:
    """Rename, in place, an mmdet 2.x DETR checkpoint's head keys to mmdet 3.x's, when the model is an mmdet 3.x
    DETR (plain DETR only: other 2.x DETR-family heads stay as they are and are refused by name)."""
    if 'bbox_head.transformer.encoder.layers.0.attentions.0.attn.in_proj_weight' not in state or \
            'encoder.layers.0.self_attn.attn.in_proj_weight' not in expected:
        return False
    for key in [key for key in state if key.startswith(('bbox_head.transformer.', 'bbox_head.query_embedding.',
                                                         'bbox_head.input_proj.'))]:
        new = key
        for pattern, replacement in _MMDET2_DETR_RENAMES:
            new = re.sub(pattern, replacement, new)
        if new != key:
            state[new] = state.pop(key)
    return True


# Top-level submodules that are a detector's/segmentor's heads (mmdet: rpn_head, roi_head, bbox_head, mask_head;
# mmseg: decode_head, auxiliary_head). Everything else (backbone, neck, DETR's encoder/decoder ...) must fit.
def _is_head_key(key: str) -> bool:
    return key.split('.', 1)[0].endswith('head')


def _top(keys: list[str]) -> list[str]:
    return sorted({key.split('.', 1)[0] for key in keys})


def _raise_misfit(model: nn.Module, source: str, meta: Mapping[str, Any] | None, state: StateDict,
                  expected: StateDict, missing: list[str], unexpected: list[str], mismatched: list[str],
                  finetune: bool) -> None:
    problems = []  # the first few of each kind: one line stays readable
    if mismatched:
        problems.append('shape mismatches ' + _listing([
            f'{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}'
            for key in mismatched
        ], _LISTED))
    if missing:
        problems.append(f'missing keys {_listing(missing, _LISTED)}')
    if unexpected:
        problems.append(f'unexpected keys {_listing(unexpected, _LISTED)}')
    what = ('fine-tuning (load_from) needs the backbone and neck to fit exactly' if finetune else
            'does not fit the model')
    raise CheckpointError(f'{source}: {what} ({_describe(model)}): ' + '; '.join(problems) + '. ' +
                          _advice(model, meta, state, expected, missing, unexpected, mismatched, finetune))


def _describe(model: nn.Module) -> str:
    backbone = getattr(model, 'backbone', None)
    name = getattr(backbone, 'display_name', None) or (type(backbone).__name__ if backbone is not None else '')
    return f'{type(model).__name__} with {name}' if name else type(model).__name__


def _advice(model: nn.Module, meta: Mapping[str, Any] | None, state: StateDict, expected: StateDict,
            missing: list[str], unexpected: list[str], mismatched: list[str], finetune: bool) -> str:
    """What to change, from the pattern of the misfit."""
    version = str((meta or {}).get('mmdet_version', ''))
    if any(key.startswith('bbox_head.transformer.') for key in unexpected):
        return (f'It is an mmdet 2.x DETR-family checkpoint{f" (mmdet {version})" if version else ""}: mmdet 3 '
                'moved bbox_head.transformer.* to the detector (encoder.*, decoder.*) and renamed its layers; '
                'pvt_det converts plain DETR only (into an mmdet 3 DETR config), not this head: use the '
                'matching mmdet 3 release or retrain')
    head_keys = [key.split('.', 1)[1] for key in unexpected if key.startswith('decode_head.')]
    if any(is_all_mlp_head_key(key) for key in head_keys) or \
            (any(key.startswith('segformer.') for key in unexpected) and 'decode_head' in _top(list(expected))):
        return ('It is a SegFormer of NVlabs/SegFormer or Hugging Face, whose all-MLP decode head is not mmseg\'s '
                'SegformerHead: set model.decode_head.type=\'SegformerMLPHead\' (e.g. --cfg-options '
                'model.decode_head.type=SegformerMLPHead), see docs/segformer.md')
    model_tops, ckpt_tops = _top(list(expected)), _top(list(state))
    if model_tops != ckpt_tops and set(_top(missing + unexpected)) - {'backbone', 'neck'}:
        return (f'It is a checkpoint of another model (it has {", ".join(ckpt_tops)}; the config builds '
                f'{", ".join(model_tops)}): use the config it was trained with')
    backbone_keys = [key for key in missing + unexpected + mismatched if key.startswith('backbone.')]
    if backbone_keys:
        return ('Its backbone is another variant or arch than the config\'s model.backbone: use the config of '
                'the variant it was trained with (e.g. retinanet_pvt_v2_b1_fpn.py for a b1 checkpoint)')
    if not finetune and mismatched and all(_is_head_key(key) and state[key].shape[1:] == expected[key].shape[1:]
                                           for key in mismatched) and not (missing or unexpected):
        return ('The head was trained for another number of classes: set num_classes (and the dataset '
                'classes) to the checkpoint\'s, or fine-tune with load_from=<file> in a training config')
    if version.startswith('2.') and any(_is_head_key(key) for key in missing + unexpected):
        return (f'It was written by mmdet {version}, and this head\'s keys changed in mmdet 3: use the mmdet 3 '
                'release of the model')
    return 'Use the config the checkpoint was trained with'
