"""Numerical parity of PVT v1/v2 with Hugging Face transformers and mmdet, through every checkpoint layout.

Reference models are built with random weights (every parameter perturbed, LayerNorms included), saved to
disk, loaded into ours through ``init_cfg``/``build_classifier`` and compared stage by stage and on logits.
Tiny architectures keep this fast; the code paths are the ones the real variants use.
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import pvt_det  # noqa: F401  (registers, applies compat)
from pvt_det.models.backbones import PVT, PVTv2
from pvt_det.models.classifiers import PVTClassifier

transformers = pytest.importorskip('transformers')

TINY = dict(embed_dims=[16, 32, 48, 64],
            num_heads=[1, 2, 3, 4],
            depths=[1, 2, 1, 1],
            mlp_ratios=[8, 8, 4, 4],
            sr_ratios=[8, 4, 2, 1])
HF_TINY = dict(hidden_sizes=TINY['embed_dims'],
               num_attention_heads=TINY['num_heads'],
               depths=TINY['depths'],
               mlp_ratios=TINY['mlp_ratios'],
               sr_ratios=TINY['sr_ratios'])
NUM_CLASSES = 7
PRETRAIN_SIZE = 64  # HF PvtModel only runs at its configured image size


def rel_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def perturb(model: nn.Module, seed: int) -> nn.Module:
    """Move every parameter away from its initial value (LayerNorm weights away from 1, biases from 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()


def official_norm_eps(model: nn.Module, embed_norm_names: tuple[str, ...]) -> None:
    """HF/mmdet use one eps everywhere; the official code (and ours) uses 1e-5 in the patch-embedding and
    spatial-reduction LayerNorms. Match the reference to the official architecture."""
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and name.endswith(embed_norm_names):
            module.eps = 1e-5


def hf_v1_classifier(seed: int = 0):
    config = transformers.PvtConfig(**HF_TINY, image_size=PRETRAIN_SIZE, num_labels=NUM_CLASSES)
    model = perturb(transformers.PvtForImageClassification(config), seed)
    official_norm_eps(model, ('patch_embeddings.0.layer_norm', 'patch_embeddings.1.layer_norm',
                              'patch_embeddings.2.layer_norm', 'patch_embeddings.3.layer_norm',
                              'attention.self.layer_norm'))
    return model


def hf_v2_classifier(linear: bool, seed: int = 1):
    config = transformers.PvtV2Config(**HF_TINY, linear_attention=linear, num_labels=NUM_CLASSES)
    model = perturb(transformers.PvtV2ForImageClassification(config), seed)
    official_norm_eps(model, ('patch_embedding.layer_norm', 'attention.layer_norm'))
    return model


def hf_v1_stage_tokens(model, x: torch.Tensor) -> list[torch.Tensor]:
    """Token outputs of v1 stages 1-3 (HF returns one hidden state per block)."""
    states = model.pvt(x, output_hidden_states=True).hidden_states
    ends = torch.tensor(TINY['depths']).cumsum(0) - 1
    return [states[int(end)] for end in ends[:3]]


def tokens_to_nchw(tokens: torch.Tensor, reference_map: torch.Tensor) -> torch.Tensor:
    n, c, h, w = reference_map.shape
    return tokens.transpose(1, 2).reshape(n, c, h, w)


def hf_to_official(state_dict: dict) -> dict:
    """Rewrite a HF PVT (v1 or v2) classification state dict into the whai362 release layout (an independent,
    test-side inverse of the HF layout, so the official converter is checked against known-good weights)."""
    out = {}
    block = {
        'layer_norm_1': 'norm1',
        'layer_norm_2': 'norm2',
        'attention.self.query': 'attn.q',
        'attention.query': 'attn.q',
        'attention.self.sequence_reduction': 'attn.sr',
        'attention.spatial_reduction': 'attn.sr',
        'attention.self.layer_norm': 'attn.norm',
        'attention.layer_norm': 'attn.norm',
        'attention.output.dense': 'attn.proj',
        'attention.proj': 'attn.proj',
        'mlp.dense1': 'mlp.fc1',
        'mlp.dense2': 'mlp.fc2',
        'mlp.dwconv.dwconv': 'mlp.dwconv.dwconv'
    }
    for key, value in state_dict.items():
        key = re.sub(r'^(pvt|pvt_v2)\.', '', key)
        if key.startswith('classifier.'):
            out['head.' + key.split('.', 1)[1]] = value
        elif key.startswith('encoder.layer_norm.'):
            out['norm.' + key.rsplit('.', 1)[1]] = value
        elif m := re.fullmatch(r'encoder\.patch_embeddings\.(\d)\.(\w+)(\.\w+)?',
                               key):  # v1 embeddings
            stage, name, suffix = int(m[1]) + 1, m[2], m[3] or ''
            if name == 'cls_token':
                out['cls_token'] = value
            elif name == 'position_embeddings':
                out[f'pos_embed{stage}'] = value
            else:
                out[f'patch_embed{stage}.{dict(projection="proj", layer_norm="norm")[name]}{suffix}'] = value
        elif m := re.fullmatch(r'encoder\.layers\.(\d)\.patch_embedding\.(\w+)\.(\w+)', key):
            out[f'patch_embed{int(m[1]) + 1}.{dict(proj="proj", layer_norm="norm")[m[2]]}.{m[3]}'] = value
        elif m := re.fullmatch(r'encoder\.layers\.(\d)\.layer_norm\.(\w+)', key):
            out[f'norm{int(m[1]) + 1}.{m[2]}'] = value
        elif m := re.fullmatch(
                r'encoder\.(?:block\.(\d)|layers\.(\d)\.blocks)\.(\d+)\.(.+)\.(weight|bias)', key):
            stage, index, name, kind = int(m[1] or m[2]) + 1, m[3], m[4], m[5]
            prefix = f'block{stage}.{index}'
            if name.endswith('key'):
                value_key = re.sub(
                    r'key\.(weight|bias)$', r'value.\1',
                    next(k for k in state_dict if k.endswith(f'.{m[3]}.{name}.{kind}') and (
                        f'block.{int(stage) - 1}.' in k or f'layers.{int(stage) - 1}.' in k)))
                out[f'{prefix}.attn.kv.{kind}'] = torch.cat([value, state_dict[value_key]])
            elif not name.endswith('value'):
                out[f'{prefix}.{block[name]}.{kind}'] = value
        else:
            raise AssertionError(f'test helper does not know {key}')
    return out


def mmdet_reference(version: int, **kwargs):
    from mmdet.models.backbones import PyramidVisionTransformer, PyramidVisionTransformerV2
    cls = PyramidVisionTransformer if version == 1 else PyramidVisionTransformerV2
    model = cls(embed_dims=16,
                num_layers=TINY['depths'],
                num_heads=TINY['num_heads'],
                mlp_ratios=TINY['mlp_ratios'],
                sr_ratios=TINY['sr_ratios'],
                drop_path_rate=0.0,
                **kwargs)
    official_norm_eps(model, ('.0.norm', 'attn.norm'))
    return model


def save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


# --------------------------------------------------------------------------------------------------- v1
@pytest.fixture(scope='module')
def v1_reference(tmp_path_factory):
    """HF v1 classifier and its weights on disk in the HF (.safetensors, .bin), official and mmdet layouts."""
    from mmdet.models.backbones.pvt import pvt_convert
    folder = tmp_path_factory.mktemp('pvt_v1')
    model = hf_v1_classifier()
    model.save_pretrained(folder / 'hf')
    official = hf_to_official(model.state_dict())
    files = dict(
        safetensors=str(folder / 'hf' / 'model.safetensors'),
        bin=save(model.state_dict(), folder / 'pytorch_model.bin'),
        official=save(official, folder / 'pvt_tiny_official.pth'),
        # mmdet's converter only strips the cls row from a 224-px (50-row) pos_embed4: strip it first.
        mmdet=save(
            {'state_dict': pvt_convert(dict(official, pos_embed4=official['pos_embed4'][:, 1:]))},
            folder / 'pvt_tiny_mmdet.pth'))
    return model, files


def test_v1_logits_match_hf_from_safetensors_bin_and_official(v1_reference):
    model, files = v1_reference
    x = torch.randn(2, 3, PRETRAIN_SIZE, PRETRAIN_SIZE)
    with torch.no_grad():
        expected = model(x).logits
        for layout in ('safetensors', 'bin', 'official'):
            ours = pvt_det.models.build_classifier('pvt_tiny',
                                                   num_classes=NUM_CLASSES,
                                                   arch=TINY,
                                                   pretrain_img_size=PRETRAIN_SIZE,
                                                   checkpoint=files[layout])
            assert rel_diff(ours.eval()(x), expected) < 1e-4, layout


def test_v1_backbone_stages_match_hf_and_mmdet(v1_reference):
    model, files = v1_reference
    x = torch.randn(2, 3, PRETRAIN_SIZE, PRETRAIN_SIZE)
    with torch.no_grad():
        hf_tokens = hf_v1_stage_tokens(model, x)
        for layout in ('safetensors', 'official', 'mmdet'):
            backbone = PVT(TINY,
                           pretrain_img_size=PRETRAIN_SIZE,
                           init_cfg=dict(type='Pretrained', checkpoint=files[layout]))
            backbone.init_weights()
            outs = backbone.eval()(x)
            # Stage 4 of the HF/official classifier attends to the cls token, the dense backbone does not
            # (as whai362's detection code); mmdet is the reference for it below.
            for ours, tokens in zip(outs[:3], hf_tokens):
                assert rel_diff(ours, tokens_to_nchw(tokens, ours)) < 1e-4, layout


@pytest.mark.parametrize('size', [(PRETRAIN_SIZE, PRETRAIN_SIZE), (96, 160), (100, 70)])
def test_v1_backbone_matches_mmdet_at_any_size(v1_reference, size):
    _, files = v1_reference
    reference = mmdet_reference(1, pretrain_img_size=PRETRAIN_SIZE)
    reference.load_state_dict(torch.load(files['mmdet'])['state_dict'], strict=True)
    ours = PVT(TINY,
               pretrain_img_size=PRETRAIN_SIZE,
               init_cfg=dict(type='Pretrained', checkpoint=files['official']))
    ours.init_weights()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = reference.eval()(x)
        for _ in range(2):  # the second pass uses the cached resized position embeddings
            outs = ours.eval()(x)
            assert len(outs) == 4
            for mine, theirs in zip(outs, expected):
                assert rel_diff(mine, theirs) < 1e-4


# --------------------------------------------------------------------------------------------------- v2
def official_to_timm(state_dict: dict) -> dict:
    """The renaming timm's pvt_v2 ``_checkpoint_filter_fn`` applies to official checkpoints."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace('patch_embed1', 'patch_embed')
        for stage in (2, 3, 4):
            key = key.replace(f'patch_embed{stage}', f'stages.{stage - 1}.downsample')
        key = key.replace('dwconv.dwconv', 'dwconv')
        key = re.sub(r'block(\d+).(\d+)', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}', key)
        key = re.sub(r'^norm(\d+)', lambda m: f'stages.{int(m.group(1)) - 1}.norm', key)
        out[key] = value
    return out


@pytest.fixture(scope='module', params=[False, True], ids=['sra', 'linear_sra'])
def v2_reference(request, tmp_path_factory):
    from mmdet.models.backbones.pvt import pvt_convert
    linear = request.param
    folder = tmp_path_factory.mktemp('pvt_v2')
    model = hf_v2_classifier(linear)
    model.save_pretrained(folder / 'hf')
    official = hf_to_official(model.state_dict())
    files = dict(safetensors=str(folder / 'hf' / 'model.safetensors'),
                 bin=save(model.state_dict(), folder / 'pytorch_model.bin'),
                 official=save({'model': official}, folder / 'official.pth'),
                 timm=save(official_to_timm(official), folder / 'timm_pvt_v2.pth'))
    if not linear:  # mmdet has no linear SRA
        files['mmdet'] = save({'state_dict': pvt_convert(official)}, folder / 'mmdet.pth')
    return model, dict(TINY, linear=linear), files


def test_v2_matches_hf_in_every_layout(v2_reference):
    model, arch, files = v2_reference
    x = torch.randn(2, 3, 70, 50)  # not a multiple of 32
    with torch.no_grad():
        hf_out = model(x, output_hidden_states=True)
        for layout, path in files.items():
            backbone = PVTv2(arch, init_cfg=dict(type='Pretrained', checkpoint=path))
            backbone.init_weights()
            for ours, theirs in zip(backbone.eval()(x), hf_out.hidden_states, strict=True):
                assert rel_diff(ours, theirs) < 1e-4, layout
            if layout != 'mmdet':  # mmdet's layout has no head
                classifier = pvt_det.models.build_classifier('pvt_v2_b0',
                                                             NUM_CLASSES,
                                                             checkpoint=path,
                                                             arch=arch)
                assert rel_diff(classifier.eval()(x), hf_out.logits) < 1e-4, layout


def test_v2_hf_backbone_layout_and_mmdet_reference(v2_reference, tmp_path):
    model, arch, files = v2_reference
    config = model.config
    config.out_features = ['stage1', 'stage2', 'stage3', 'stage4']
    hf_backbone = transformers.PvtV2Backbone(config).eval()
    hf_backbone.load_state_dict(model.pvt_v2.state_dict())  # PvtV2Backbone has PvtV2Model's keys
    official_norm_eps(hf_backbone, ('patch_embedding.layer_norm', 'attention.layer_norm'))
    hf_backbone.save_pretrained(tmp_path)
    backbone = PVTv2(arch,
                     init_cfg=dict(type='Pretrained',
                                   checkpoint=str(tmp_path / 'model.safetensors')))
    backbone.init_weights()
    x = torch.randn(1, 3, 77, 61)
    with torch.no_grad():
        ours = backbone.eval()(x)
        for mine, theirs in zip(ours, hf_backbone(x).feature_maps, strict=True):
            assert rel_diff(mine, theirs) < 1e-4
        if 'mmdet' in files:
            reference = mmdet_reference(2)
            reference.load_state_dict(torch.load(files['mmdet'])['state_dict'], strict=True)
            for mine, theirs in zip(ours, reference.eval()(x), strict=True):
                assert rel_diff(mine, theirs) < 1e-4


def test_our_layout_round_trip_through_classifier(v2_reference, tmp_path):
    """A classifier state dict saved by us loads back into a classifier and into a bare backbone."""
    model, arch, files = v2_reference
    classifier = pvt_det.models.build_classifier('pvt_v2_b0',
                                                 NUM_CLASSES,
                                                 checkpoint=files['official'],
                                                 arch=arch)
    path = save({'state_dict': classifier.state_dict()}, tmp_path / 'ours.pth')
    again = pvt_det.models.build_classifier('pvt_v2_b0', NUM_CLASSES, checkpoint=path, arch=arch)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_diff(again.eval()(x), model(x).logits) < 1e-4
    assert isinstance(again, PVTClassifier)
