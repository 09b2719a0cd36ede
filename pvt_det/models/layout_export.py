"""Write pvt_det weights in the layouts of the projects people take a model to: the official releases
(whai362/PVT, NVlabs/SegFormer, microsoft/CvT), mmdet, Hugging Face transformers and timm.

The readers of those layouts live beside each family (``backbones/pvt.py``, ``backbones/cvt.py``); the writers
here reuse them instead of a second set of name tables:

* ``hf``: the target model's own parameter list (built from a config derived from our architecture) is run
  through our reader with every element numbered; where each number lands in pvt_det's names says where each of
  our elements goes (renames, the key/value split, the v1 cls row, all at once). A parameter the reader cannot
  place, or one of ours with no place, is an error, never a silent gap.
* ``official``: the inverse of the stage container renaming (the official names are ours per stage);
  ``timm``: ours with timm's two patch-embedding names; ``mmdet``: the official file through mmdet's own
  ``pvt_convert``.

Every export is verified before it is kept: the written weights are loaded back (``hf``: by transformers'
``from_pretrained``; the others: through pvt_det's reader of that layout into a fresh model) and their stage maps
(and logits, for a classifier) compared with the source model's; the relative difference must stay below
:data:`TOLERANCE`. Files are written atomically: a failed export leaves nothing behind.
"""
from __future__ import annotations

import copy
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import TMP_PREFIX, atomic_output
from .backbones.base import PyramidBackbone
from .checkpoint import CheckpointError, StateDict, _listing, load_pretrained, registered_layouts

__all__ = ['EXPORT_TARGETS', 'TOLERANCE', 'ExportReport', 'export_model', 'official_state_dict',
           'hf_model_for']

EXPORT_TARGETS = ('official', 'mmdet', 'hf', 'timm')
# Largest relative difference (max |ours - theirs| / max |theirs|, per stage map and on logits) an export may show.
TOLERANCE = 1e-4
# Test input side for the verification (PVT v1 runs at its pretrain size instead: its position grids are fixed
# in transformers' PvtModel).
_CHECK_SIZE = (64, 96)


@dataclass
class ExportReport:
    path: str
    target: str
    kind: str  # 'classifier' or 'backbone'
    written_as: str  # the layout, or the transformers class
    keys: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # whole-model keys not written (neck, heads ...)
    max_rel_diff: float = 0.0  # of the verification


def export_model(model: nn.Module, dst: str | os.PathLike, target: str, overwrite: bool = False,
                 left_out: list[str] | None = None, meta: dict[str, str] | None = None) -> ExportReport:
    """Write ``model`` (a pvt_det classifier or bare backbone, weights loaded) to ``dst`` in ``target``'s layout
    (see :data:`EXPORT_TARGETS`), verified as the module docstring says. ``left_out`` names what the source had
    besides (a detector's neck and heads); it is reported, not written."""
    if target not in EXPORT_TARGETS:
        raise ValueError(f'unknown export target {target!r}; valid: {list(EXPORT_TARGETS)}')
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise FileExistsError(f'{dst} already exists; choose another destination or pass --overwrite')
    backbone, was_training = _backbone_of(model), model.training
    model.eval()  # the comparison needs dropout, drop path and BatchNorm statistics as at inference
    try:
        if target == 'hf':
            report = _export_hf(model, backbone, dst)
        else:
            report = _export_file(model, backbone, dst, target, meta or {})
    finally:
        model.train(was_training)
    report.left_out = sorted([*report.left_out, *(left_out or [])])
    return report


# ------------------------------------------------------------------------------------------- file layouts
def official_state_dict(state: StateDict, family: str) -> StateDict:
    """pvt_det's classifier namespace (``backbone.*`` + head keys) -> the official release's keys."""
    if family == 'cvt':  # microsoft/CvT: our stage containers are its 'stage{i}'
        return {re.sub(r'^backbone\.stages\.(\d+)\.', r'stage\1.', key): value for key, value in state.items()}
    out: StateDict = {}
    last_pos = max((int(m[1]) for key in state if (m := re.fullmatch(r'backbone\.stages\.(\d+)\.pos_embed', key))),
                   default=None)
    for key, value in state.items():
        match = re.fullmatch(r'backbone\.stages\.(\d+)\.(patch_embed|pos_embed|blocks|norm)(.*)', key)
        if match is None:
            if key != 'cls_pos_embed':  # joins the last position embedding below
                out[key] = value  # head.*, norm.* (v1's final norm), cls_token
            continue
        stage, kind, rest = int(match[1]) + 1, match[2], match[3]
        if kind == 'pos_embed':
            if stage - 1 == last_pos and 'cls_pos_embed' in state:  # the release keeps the cls row first
                value = torch.cat([state['cls_pos_embed'], value], dim=1)
            out[f'pos_embed{stage}'] = value
        elif kind == 'blocks':
            out[f'block{stage}{rest.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")}'] = value
        else:
            out[f'{kind}{stage}{rest}'] = value
    return out


def _timm_state_dict(state: StateDict) -> StateDict:
    """timm's pvt_v2 keeps our per-stage names, except that it calls the first patch embedding ``patch_embed``
    and the others ``stages.{i}.downsample``."""
    out = {}
    for key, value in state.items():
        key = re.sub(r'^backbone\.stages\.0\.patch_embed\.', 'patch_embed.', key)
        key = re.sub(r'^backbone\.stages\.(\d+)\.patch_embed\.', r'stages.\1.downsample.', key)
        out[key.removeprefix('backbone.')] = value
    return out


def _target_state(model: nn.Module, backbone: PyramidBackbone, target: str) -> StateDict:
    state = _classifier_namespace(model)
    family = backbone.family
    if target in ('timm', 'mmdet') and family == 'cvt':
        raise CheckpointError(f'{target} has no CvT; export a CvT --to hf or --to official')
    if target == 'timm' and family != 'pvt_v2':
        raise CheckpointError('timm has PVT v2 only (pvt_v2_*), not PVT v1; export --to hf, official or mmdet')
    if target == 'mmdet' and getattr(backbone, 'linear', False):
        raise CheckpointError('mmdet has no linear spatial-reduction attention (b2_li); export --to official, '
                              'hf or timm')
    if target == 'timm':
        return _timm_state_dict(state)
    if target == 'mmdet':  # no classifier there: without the cls row, any v1 position grid converts
        state = {key: value for key, value in state.items() if key.startswith('backbone.')}
    official = official_state_dict(state, family)
    if target == 'official':
        return official
    from mmdet.models.backbones.pvt import pvt_convert  # mmdet's own official -> mmdet conversion
    return dict(pvt_convert(official))


def _export_file(model: nn.Module, backbone: PyramidBackbone, dst: Path, target: str,
                 meta: dict[str, str]) -> ExportReport:
    state = {key: value.detach().contiguous() for key, value in _target_state(model, backbone, target).items()}
    # Verify: a fresh model (every float NaN, so nothing can pass by staying as it was) loads the written keys
    # through our reader of that layout and must compute what the source computes.
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for tensor in fresh.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(math.nan)
    has_head = any(key.startswith('head.') for key in state)
    target_module = fresh if has_head else _backbone_of(fresh)
    load_pretrained(target_module, dict(state), backbone.family)
    diff = _compare_ours(model, fresh.eval(), with_logits=has_head)
    _check_close(diff, dst, target)
    kind = 'classifier' if has_head else 'backbone'
    with atomic_output(dst) as tmp_path:
        if dst.suffix == '.safetensors':
            from safetensors.torch import save_file
            save_file(state, tmp_path, metadata=dict(meta, layout=target))
        else:  # mmdet's init_cfg / load_checkpoint read 'state_dict'; the releases and timm a plain state dict
            payload = {'state_dict': state, 'meta': dict(meta, layout=target)} if target == 'mmdet' else state
            with open(tmp_path, 'wb') as file:  # a file object: torch names the archive after a path's stem
                torch.save(payload, file)
    # mmdet's layout has no classifier: a classifier's head, final norm and cls token stay behind, by name.
    dropped = [] if has_head else [key for key in _classifier_namespace(model) if not key.startswith('backbone.')]
    return ExportReport(str(dst), target, kind, f'{target} layout', sorted(state), dropped, max(diff.values()))


def _compare_ours(model: nn.Module, other: nn.Module, with_logits: bool) -> dict[str, float]:
    x = _check_input(_backbone_of(model))
    with torch.no_grad():
        diff = {f'stage{i + 1}': _rel_diff(mine, theirs) for i, (mine, theirs) in enumerate(zip(
            _stage_maps(_backbone_of(model), x), _stage_maps(_backbone_of(other), x), strict=True))}
        if with_logits:
            diff['logits'] = _rel_diff(model(x), other(x))
    return diff


# --------------------------------------------------------------------------------------------- transformers
def hf_model_for(model: nn.Module) -> nn.Module:
    """The transformers model matching ``model`` (a pvt_det classifier or backbone): ``PvtV2Model`` /
    ``SegformerModel`` (MiT) / ``CvtModel`` / ``PvtModel``, or their ``...ForImageClassification``; on the meta
    device (no weights yet), eval mode."""
    import transformers
    backbone = _backbone_of(model)
    settings = backbone.arch_settings
    n = backbone.num_stages
    head = getattr(model, 'head', None)
    num_labels = head.out_features if isinstance(head, nn.Linear) else 0
    common = dict(num_channels=backbone.in_channels)
    if num_labels:
        common['num_labels'] = num_labels
    if backbone.family == 'cvt':
        mlp_ratio = backbone.stages[0].blocks[0].mlp.fc1.out_features / settings['embed_dims'][0]
        config = transformers.CvtConfig(
            embed_dim=list(settings['embed_dims']), num_heads=list(settings['num_heads']),
            depth=list(settings['depths']), mlp_ratio=[mlp_ratio] * n, drop_path_rate=[0.0] * n,
            cls_token=[False] * (n - 1) + [True], **common)
        names = ('CvtModel', 'CvtForImageClassification')
    elif backbone.family == 'pvt':
        if backbone.pretrain_img_size[0] != backbone.pretrain_img_size[1]:
            raise CheckpointError(f'transformers\' PvtModel has square position grids only; this PVT was built '
                                  f'with pretrain_img_size={backbone.pretrain_img_size}')
        if not num_labels:
            raise CheckpointError(
                "transformers' PvtModel always puts a cls token into stage 4, which a PVT v1 backbone without its "
                'classifier lacks (its stage-4 maps would change); export the ImageNet classifier checkpoint')
        config = transformers.PvtConfig(
            image_size=backbone.pretrain_img_size[0], num_encoder_blocks=n, depths=list(settings['depths']),
            sequence_reduction_ratios=list(settings['sr_ratios']), hidden_sizes=list(settings['embed_dims']),
            patch_sizes=list(backbone.patch_sizes[:n]), strides=list(backbone.strides[:n]),
            num_attention_heads=list(settings['num_heads']), mlp_ratios=list(settings['mlp_ratios']),
            layer_norm_eps=1e-6, **common)
        names = ('PvtModel', 'PvtForImageClassification')
    elif backbone.arch_name.startswith('mit_'):
        config = transformers.SegformerConfig(
            num_encoder_blocks=n, depths=list(settings['depths']), sr_ratios=list(settings['sr_ratios']),
            hidden_sizes=list(settings['embed_dims']), patch_sizes=list(backbone.patch_sizes[:n]),
            strides=list(backbone.strides[:n]), num_attention_heads=list(settings['num_heads']),
            mlp_ratios=list(settings['mlp_ratios']), **common)
        names = ('SegformerModel', 'SegformerForImageClassification')
    else:
        config = transformers.PvtV2Config(
            num_encoder_blocks=n, depths=list(settings['depths']), sr_ratios=list(settings['sr_ratios']),
            hidden_sizes=list(settings['embed_dims']), patch_sizes=list(backbone.patch_sizes[:n]),
            strides=list(backbone.strides[:n]), num_attention_heads=list(settings['num_heads']),
            mlp_ratios=list(settings['mlp_ratios']), linear_attention=bool(getattr(backbone, 'linear', False)),
            out_features=list(backbone.out_features), **common)
        names = ('PvtV2Model', 'PvtV2ForImageClassification')
    with torch.device('meta'):  # shapes only: the weights come from ours (no random init of a large model)
        return getattr(transformers, names[1] if num_labels else names[0])(config).eval()


def _hf_reader(backbone: PyramidBackbone, hf_model: nn.Module):
    """Our registered reader of the layout ``hf_model`` saves (and the key prefix that makes it recognise the
    in-memory names: transformers 5 names SegformerModel's parameters 'stages.*', its reader wants a model
    prefix)."""
    name = 'huggingface_segformer' if type(hf_model).__name__.startswith('Segformer') else 'huggingface'
    layout = next((entry for entry in registered_layouts(backbone.family) if entry.name == name), None)
    if layout is None:
        raise CheckpointError(f'no {backbone.family} {name} layout is registered to write from')
    prefix = 'segformer.' if type(hf_model).__name__ == 'SegformerModel' else ''
    return layout, prefix


def _invert_reader(template: StateDict, prefix: str, layout: Any, backbone: PyramidBackbone,
                   ours: StateDict) -> StateDict:
    """Fill ``template``'s tensors from ``ours`` by running the reader ``layout`` on numbered elements."""
    probe, offset = {}, 0
    for key, tensor in template.items():
        numbers = torch.arange(offset, offset + tensor.numel(), dtype=torch.float64)
        probe[prefix + key] = numbers.reshape(tensor.shape)
        offset += tensor.numel()
    read = layout.convert(probe, backbone)  # not _run_converter: the source backbone's eps must stay as they are
    unplaced = sorted(set(ours) - set(read))
    no_source = sorted(set(read) - set(ours))
    if unplaced or no_source:
        problems = ([f'ours without a place there {_listing(unplaced)}'] if unplaced else []) + \
            ([f'theirs with no source here {_listing(no_source)}'] if no_source else [])
        raise CheckpointError(f'the {layout.name} layout does not fit this model: ' + '; '.join(problems))
    flat = torch.zeros(offset, dtype=torch.float64)
    filled = torch.zeros(offset, dtype=torch.bool)
    for key, value in ours.items():
        index = read[key].reshape(-1).long()
        if read[key].shape != value.shape:
            raise CheckpointError(f'{key}: ours {tuple(value.shape)} vs {tuple(read[key].shape)} there')
        flat[index] = value.detach().reshape(-1).to(torch.float64)
        filled[index] = True
    out, offset = {}, 0
    for key, tensor in template.items():
        if not filled[offset:offset + tensor.numel()].all():
            raise CheckpointError(f'{key} of the {layout.name} layout gets no value from this model')
        out[key] = flat[offset:offset + tensor.numel()].reshape(tensor.shape).to(tensor.dtype)
        offset += tensor.numel()
    return out


def _export_hf(model: nn.Module, backbone: PyramidBackbone, dst: Path) -> ExportReport:
    import transformers
    hf_model = hf_model_for(model)
    layout, prefix = _hf_reader(backbone, hf_model)
    # Every entry of the state dict, buffers included (BatchNorm statistics of CvT).
    hf_state = _invert_reader(hf_model.state_dict(), prefix, layout, backbone, _classifier_namespace(model))
    hf_model.load_state_dict(hf_state, strict=True, assign=True)
    tensors = [*hf_model.named_parameters(), *hf_model.named_buffers()]
    leftover = [name for name, tensor in tensors if tensor.is_meta]
    if leftover:
        raise CheckpointError(f'{type(hf_model).__name__} has tensors outside its state dict: '
                              f'{_listing(leftover)}')
    kind = 'classifier' if 'Classification' in type(hf_model).__name__ else 'backbone'
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dst.parent))
    try:
        hf_model.save_pretrained(tmp_dir, safe_serialization=True)
        auto = transformers.AutoModelForImageClassification if kind == 'classifier' else transformers.AutoModel
        loaded = auto.from_pretrained(tmp_dir).eval()
        if type(loaded) is not type(hf_model):
            raise CheckpointError(f'transformers loads {dst} as {type(loaded).__name__}, not '
                                  f'{type(hf_model).__name__}')
        diff = _compare_hf(model, backbone, loaded)
        _check_close(diff, dst, 'hf', _hf_hint(backbone, hf_model))
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        os.replace(tmp_dir, dst)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return ExportReport(str(dst), 'hf', kind, type(hf_model).__name__, sorted(hf_state),
                        max_rel_diff=max(diff.values()))


def _compare_hf(model: nn.Module, backbone: PyramidBackbone, hf_model: nn.Module) -> dict[str, float]:
    x = _check_input(backbone)
    with torch.no_grad():
        ours = _stage_maps(backbone, x)
        out = hf_model(x, output_hidden_states=True)
        if backbone.family == 'pvt':  # one hidden state (tokens) per block; stage 4 also holds the cls token
            ends = torch.tensor(backbone.arch_settings['depths']).cumsum(0) - 1
            theirs = [out.hidden_states[int(end)].transpose(1, 2).reshape(mine.shape)
                      for end, mine in zip(ends[:-1], ours[:-1])]
        else:
            theirs = list(out.hidden_states)
        diff = {f'stage{i + 1}': _rel_diff(mine, other) for i, (mine, other) in enumerate(zip(ours, theirs))}
        if backbone.family != 'pvt' and len(theirs) != len(ours):
            raise CheckpointError(f'transformers returns {len(theirs)} stage maps, ours {len(ours)}')
        if hasattr(out, 'logits'):
            diff['logits'] = _rel_diff(model(x), out.logits)
    return diff


def _hf_hint(backbone: PyramidBackbone, hf_model: nn.Module) -> str:
    if backbone.family == 'cvt' and any(type(m).__name__ == 'QuickGELU' for m in backbone.modules()):
        return (" transformers' CvT computes exact GELU where this CvT uses QuickGELU (the official activation): "
                "only a CvT built with act_cfg=dict(type='GELU') carries over (--cvt-act gelu)")
    eps = getattr(backbone, 'norm_eps', None)
    if eps is not None:
        return f' (LayerNorm eps here {eps}; transformers\' {type(hf_model).__name__} uses one value everywhere)'
    return ''


# ---------------------------------------------------------------------------------------------- helpers
def _backbone_of(model: nn.Module) -> PyramidBackbone:
    backbone = model.backbone if isinstance(getattr(model, 'backbone', None), nn.Module) else model
    if not isinstance(backbone, PyramidBackbone):
        raise TypeError(f'expected a pvt_det classifier or backbone, got {type(model).__name__}')
    return backbone


def _classifier_namespace(model: nn.Module) -> StateDict:
    """``model``'s weights as the readers return them: backbone keys under ``backbone.``, head keys at the top."""
    if model is _backbone_of(model):
        return {f'backbone.{key}': value for key, value in model.state_dict().items()}
    return dict(model.state_dict())


def _check_input(backbone: PyramidBackbone) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if getattr(backbone, 'pretrain_img_size', None):  # PVT v1: its own grid (what transformers runs at)
        size = tuple(backbone.pretrain_img_size)
    else:
        size = tuple(max(side, backbone.min_input_size) for side in _CHECK_SIZE)
    return torch.randn(1, backbone.in_channels, *size, generator=generator)


def _stage_maps(backbone: PyramidBackbone, x: torch.Tensor) -> list[torch.Tensor]:
    return backbone.forward_intermediates(x, intermediates_only=True)


def _rel_diff(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    if mine.shape != theirs.shape:
        raise CheckpointError(f'shape {tuple(mine.shape)} here vs {tuple(theirs.shape)} after export')
    scale = theirs.abs().max().item()
    diff = (mine - theirs).abs().max().item()
    return diff / scale if scale > 0 else diff


def _check_close(diff: dict[str, float], dst: Path, target: str, hint: str = '') -> None:
    worst = max(diff, key=lambda key: (math.isnan(diff[key]), diff[key]))
    if math.isnan(diff[worst]) or diff[worst] >= TOLERANCE:
        shown = ', '.join(f'{key} {value:.2g}' for key, value in diff.items())
        raise CheckpointError(f'not written: {dst} ({target}) would not compute what this model computes: '
                              f'relative differences {shown} (limit {TOLERANCE:g}).{hint}')
