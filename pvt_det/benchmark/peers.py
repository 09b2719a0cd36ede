"""The peer implementations holding the same weights: ours, mmdet's and Hugging Face's backbones.

A Hugging Face model with random weights (every parameter and buffer perturbed) is written once; ours loads it
through its own ``init_cfg`` (layout detected), mmdet gets it rewritten to the official whai362 layout and
converted by mmdet's own ``pvt_convert``.
"""
from __future__ import annotations

import os.path as osp
import re
import sys
from typing import Callable

import torch
import torch.nn.functional as F

from .archs import CVT_ARCHS, HEADS, IMPLS, PVT_ARCHS, SR_RATIOS, BenchmarkError, check_arch, has_mmdet_peer, short_arch


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and buffer distinct values (LayerNorm weights too), so a key loaded into
    the wrong place shows up as an output mismatch."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            if 'running_var' in name:
                t.copy_(1 + 0.1 * torch.rand(t.shape, generator=gen))
            elif t.dim() == 1 and ('norm' in name or 'bn' in name.lower()) and name.endswith('weight'):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=gen))
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 50
                t.copy_(torch.randn(t.shape, generator=gen) / fan_in ** 0.5)
    return model


def hf_pvt_model(arch: str) -> torch.nn.Module:
    """Hugging Face model of ``arch`` (random weights). v2 returns all four stage maps."""
    import transformers as tf
    family, width, depths, mlp_ratios, linear = PVT_ARCHS[arch]
    common = dict(depths=list(depths), hidden_sizes=[width * h for h in HEADS], mlp_ratios=list(mlp_ratios),
                  num_attention_heads=list(HEADS), drop_path_rate=0.0)
    if family == 1:
        return tf.PvtModel(tf.PvtConfig(sequence_reduction_ratios=list(SR_RATIOS), **common))
    cfg = tf.PvtV2Config(sr_ratios=list(SR_RATIOS), linear_attention=linear,
                         out_features=['stage1', 'stage2', 'stage3', 'stage4'], **common)
    return tf.PvtV2Backbone(cfg)


def hf_cvt_model(arch: str) -> torch.nn.Module:
    import transformers as tf
    dims, heads, depths = CVT_ARCHS[arch]
    return tf.CvtModel(tf.CvtConfig(embed_dim=list(dims), num_heads=list(heads), depth=list(depths),
                                    drop_path_rate=[0.0, 0.0, 0.0]), add_pooling_layer=False)


def hf_to_official_pvt(state: dict) -> dict:
    """Hugging Face PVT keys -> the official whai362 layout (which mmdet's ``pvt_convert`` reads)."""

    out = {}
    stage_rules = [  # (HF pattern, official replacement); applied to the part after the stage/block index
        ('layer_norm_1.', 'norm1.'), ('layer_norm_2.', 'norm2.'), ('mlp.dense1.', 'mlp.fc1.'),
        ('mlp.dense2.', 'mlp.fc2.'), ('mlp.dwconv.dwconv.', 'mlp.dwconv.dwconv.'),
        ('attention.self.sequence_reduction.', 'attn.sr.'), ('attention.spatial_reduction.', 'attn.sr.'),
        ('attention.self.layer_norm.', 'attn.norm.'), ('attention.layer_norm.', 'attn.norm.'),
        ('attention.output.dense.', 'attn.proj.'), ('attention.proj.', 'attn.proj.'),
        ('attention.self.query.', 'attn.q.'), ('attention.query.', 'attn.q.'),
    ]
    for key, value in state.items():
        key = key.removeprefix('pvt.').removeprefix('pvt_v2.')
        m = (re.match(r'encoder\.block\.(\d+)\.(\d+)\.(.*)', key)
             or re.match(r'encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.*)', key))
        if m:
            stage, block, rest = int(m[1]) + 1, m[2], m[3]
            if 'key.' in rest:  # k and v are one `kv` linear in the official code
                value = torch.cat([value, state[key.replace('key.', 'value.')]])
                rest = 'attn.kv.' + rest.rsplit('.', 1)[1]
            elif 'value.' in rest:
                continue
            for pattern, repl in stage_rules:
                rest = rest.replace(pattern, repl)
            out[f'block{stage}.{block}.{rest}'] = value
            continue
        m = (re.match(r'encoder\.patch_embeddings\.(\d+)\.(.*)', key)
             or re.match(r'encoder\.layers\.(\d+)\.patch_embedding\.(.*)', key))
        if m:
            stage, rest = int(m[1]) + 1, m[2]
            if rest == 'position_embeddings':
                out[f'pos_embed{stage}'] = value
            elif rest == 'cls_token':
                out['cls_token'] = value
            else:
                rest = rest.replace('projection.', 'proj.').replace('layer_norm.', 'norm.')
                out[f'patch_embed{stage}.{rest}'] = value
            continue
        m = re.match(r'encoder\.layers\.(\d+)\.layer_norm\.(.*)', key)
        if m:
            out[f'norm{int(m[1]) + 1}.{m[2]}'] = value
        elif key.startswith('encoder.layer_norm.'):
            out['norm.' + key.rsplit('.', 1)[1]] = value
        else:
            raise KeyError(f'unexpected Hugging Face PVT key {key}')
    return out


class Impl:
    """One implementation of a backbone: a module and how to run it (outputs -> list of tensors)."""

    def __init__(self, name: str, model: torch.nn.Module, run: Callable | None = None):
        self.name, self.model = name, model
        self.run = run or (lambda x: list(model(x)))


def build_backbones(arch: str, impls: list[str], tmpdir: str, with_cp: bool = False,
                    shape: tuple[int, int] | None = None) -> list[Impl]:
    """Every requested implementation of ``arch`` holding the same (random) weights, for inputs of
    ``shape`` (only Hugging Face's PVT v1 needs to know it, see ``resize_hf_pos_embeds_``)."""
    check_arch(arch)
    is_cvt = arch in CVT_ARCHS
    torch.manual_seed(0)
    hf = perturb_(hf_cvt_model(arch) if is_cvt else hf_pvt_model(arch)).eval()
    hf_path = osp.join(tmpdir, f'{arch}_hf.pth')
    torch.save(hf.state_dict(), hf_path)
    built = []
    for impl in impls:
        if impl == 'hf':
            if is_cvt:  # every stage's map (NCHW)
                built.append(Impl('hf', hf, lambda x, m=hf: list(m(x, output_hidden_states=True).hidden_states)))
            elif PVT_ARCHS[arch][0] == 1:  # PvtModel: the token sequence after each stage's last block
                if shape is not None:
                    resize_hf_pos_embeds_(hf, shape)
                ends = torch.tensor(PVT_ARCHS[arch][2]).cumsum(0) - 1
                built.append(Impl('hf', hf, lambda x, m=hf, ends=ends: [
                    m(x, output_hidden_states=True).hidden_states[i] for i in ends]))
            else:
                built.append(Impl('hf', hf, lambda x, m=hf: list(m(x).feature_maps)))
        elif impl == 'mmdet':
            if not has_mmdet_peer(arch):
                print(f'[skip] mmdet has no {arch}', file=sys.stderr)
                continue
            built.append(Impl('mmdet', build_mmdet_pvt(arch, hf)))
        elif impl == 'ours':
            built.append(Impl('ours', build_ours(arch, hf_path, with_cp)))
        else:
            raise BenchmarkError(f'unknown --impl {impl!r}; choose from {", ".join(IMPLS)}')
    return built


def resize_hf_pos_embeds_(hf: torch.nn.Module, shape: tuple[int, int]) -> None:
    """Resize HF PvtModel's position embeddings to the token grids of an ``shape`` input, as every
    PVT v1 does per input size (bilinear from the stored grid, cls row kept as is).

    HF's own ``interpolate_pos_encoding`` reshapes the stored embedding with the *target* grid and
    so crashes at any size but 224; with the embeddings resized beforehand its interpolation is an
    identity, still computed on every forward, and its outputs equal the others'.
    """
    h, w = shape[0] // 4, shape[1] // 4
    with torch.no_grad():
        for stage, embed in enumerate(hf.encoder.patch_embeddings):
            if stage:
                h, w = h // 2, w // 2
            pos = embed.position_embeddings
            cls, grid = (pos[:, :1], pos[:, 1:]) if embed.cls_token is not None else (pos[:, :0], pos)
            side = int(grid.shape[1] ** 0.5)
            grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode='bilinear').flatten(2).transpose(1, 2)
            embed.position_embeddings = torch.nn.Parameter(torch.cat([cls, grid], 1))


def build_mmdet_pvt(arch: str, hf: torch.nn.Module) -> torch.nn.Module:
    """mmdet's PyramidVisionTransformer(V2) holding ``hf``'s weights, converted by mmdet's own
    ``pvt_convert`` from the official layout and loaded strictly (its init_weights loads non-strictly)."""
    from mmdet.models.backbones.pvt import PyramidVisionTransformer, PyramidVisionTransformerV2, pvt_convert
    family, width, depths, mlp_ratios, _ = PVT_ARCHS[arch]
    cls = PyramidVisionTransformer if family == 1 else PyramidVisionTransformerV2
    model = cls(embed_dims=width, num_layers=list(depths), num_heads=list(HEADS), mlp_ratios=list(mlp_ratios),
                sr_ratios=list(SR_RATIOS), drop_path_rate=0.0)
    model.load_state_dict(pvt_convert(hf_to_official_pvt(hf.state_dict())), strict=True)
    return model.eval()


def build_ours(arch: str, checkpoint: str, with_cp: bool = False) -> torch.nn.Module:
    """Our backbone loading a Hugging Face checkpoint through its ``init_cfg`` (layout auto-detected)."""
    from pvt_det.models.backbones import pvt as pvt_module
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    if arch in CVT_ARCHS:
        from pvt_det.models.backbones.cvt import CvT
        # Hugging Face's CvT uses GELU where the official one (our default) uses QuickGELU: same math here.
        model = CvT(arch=arch.split('_', 1)[1], out_indices=(0, 1, 2), act_cfg=dict(type='GELU'), init_cfg=init_cfg)
    else:
        cls = pvt_module.PVT if PVT_ARCHS[arch][0] == 1 else pvt_module.PVTv2
        model = cls(arch=short_arch(arch), drop_path_rate=0.0, with_cp=with_cp, init_cfg=init_cfg)
    model.init_weights()
    return model.eval()


def output_differences(impls: list[Impl], x: torch.Tensor) -> dict[str, float]:
    """Max relative difference of every other implementation's stage maps from the first one's.

    Hugging Face's PVT v1 (like the official classifier) attends over the cls token in stage 4,
    which detection backbones drop, so its stage 4 is not compared.
    """
    with torch.inference_mode():
        outs = {impl.name: impl.run(x) for impl in impls}
    ref_name, ref = next(iter(outs.items()))
    diffs = {}
    for name, maps in list(outs.items())[1:]:
        stage_diffs = []
        for a, b in zip(ref, maps):
            if b.dim() == 3:  # HF tokens (N, L, C) -> NCHW like ours
                if b.shape[1] != a.shape[-2] * a.shape[-1]:
                    continue  # stage 4 with a cls token
                b = b.transpose(1, 2).reshape(a.shape)
            stage_diffs.append(((a.float() - b.float()).abs().max() / a.float().abs().max()).item())
        diffs[name] = max(stage_diffs)
    return diffs


def build_ours_random(arch: str) -> torch.nn.Module:
    from pvt_det.models.backbones import pvt as pvt_module
    if arch in CVT_ARCHS:
        from pvt_det.models.backbones.cvt import CvT
        return CvT(arch=arch.split('_', 1)[1], out_indices=(0, 1, 2)).eval()
    cls = pvt_module.PVT if PVT_ARCHS[arch][0] == 1 else pvt_module.PVTv2
    return cls(arch=short_arch(arch)).eval()


