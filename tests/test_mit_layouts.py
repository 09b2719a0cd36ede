"""SegFormer's Mix Transformer (MiT) checkpoints in every layout people hold load into ``PVTv2(arch='mit_bN')``.

Each reference implementation is built with random weights (every parameter perturbed, LayerNorms included) and
saved in its own layout: NVlabs/whai362's official module (``mit_b*.pth`` keys + ``head.*``), mmseg's
``MixVisionTransformer`` (``layers.*``; whole SegFormer checkpoints put it under ``backbone.``) and transformers'
Segformer models (``segformer.encoder.*``, the hub's spelling that ``save_pretrained`` writes, and transformers 5's
in-memory names). pvt_det loads the file through ``init_cfg`` (or ``build_classifier``) and must give the same
stage maps, and every converted tensor must be the reference's. The LayerNorm eps follows the file's origin.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

import pvt_det  # noqa: F401  (registers, applies compat)
from pvt_det.models import build_classifier
from pvt_det.models.backbones import PVTv2
from pvt_det.models.backbones.pvt import MIT_ARCHS
from test_pvt_parity import perturb, rel_diff  # the same randomisation and measure as the PVT parity tests

transformers = pytest.importorskip('transformers')

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_CODE = REPO.parent / 'shared' / 'reference' / 'whai362_pvt_v2' / 'classification_pvt_v2.py'
ARCHS = ['mit_b0', 'mit_b2']
NUM_CLASSES = 7
SIZE = 64
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def image() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))


# ----------------------------------------------------------------------------------------------- references
def official_module():
    """whai362's classification_pvt_v2.py (NVlabs/SegFormer's mix_transformer.py is the same module), with the
    three timm helpers it imports stood in by the vendored timm code (timm cannot be installed here)."""
    if not OFFICIAL_CODE.is_file():
        pytest.skip('the official whai362/PVT code is not in ../shared/reference')
    import _vendored_timm_pvt_v2 as vendored
    stubs = {
        'timm': types.ModuleType('timm'),
        'timm.models': types.ModuleType('timm.models'),
        'timm.models.layers': types.SimpleNamespace(DropPath=vendored.DropPath, to_2tuple=vendored.to_2tuple,
                                                    trunc_normal_=vendored.trunc_normal_),
        'timm.models.registry': types.SimpleNamespace(register_model=lambda fn: fn),
        'timm.models.vision_transformer': types.SimpleNamespace(_cfg=lambda **kwargs: kwargs),
    }
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location('official_pvt_v2', OFFICIAL_CODE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def official_mit(arch: str, seed: int) -> nn.Module:
    spec = MIT_ARCHS[arch]
    model = official_module().PyramidVisionTransformerV2(
        embed_dims=spec['embed_dims'], num_heads=spec['num_heads'], mlp_ratios=spec['mlp_ratios'], qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), depths=spec['depths'], sr_ratios=spec['sr_ratios'],
        num_classes=NUM_CLASSES)
    return perturb(model, seed)


def official_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    maps = []
    for i in range(1, 5):
        x, height, width = getattr(model, f'patch_embed{i}')(x)
        for block in getattr(model, f'block{i}'):
            x = block(x, height, width)
        x = getattr(model, f'norm{i}')(x)
        x = x.reshape(x.shape[0], height, width, -1).permute(0, 3, 1, 2)
        maps.append(x)
    return maps


def mmseg_mit(arch: str, seed: int) -> nn.Module:
    from mmseg.models.backbones import MixVisionTransformer
    spec = MIT_ARCHS[arch]
    model = MixVisionTransformer(embed_dims=spec['embed_dims'][0], num_layers=spec['depths'],
                                 num_heads=spec['num_heads'], sr_ratios=spec['sr_ratios'], mlp_ratio=4,
                                 drop_path_rate=0.0)
    return perturb(model, seed)


def hf_config(arch: str, **kwargs):
    spec = MIT_ARCHS[arch]
    return transformers.SegformerConfig(hidden_sizes=spec['embed_dims'], depths=spec['depths'],
                                        num_attention_heads=spec['num_heads'], sr_ratios=spec['sr_ratios'],
                                        mlp_ratios=spec['mlp_ratios'], **kwargs)


def hf_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    segformer = getattr(model, 'segformer', model)
    return list(segformer(x, output_hidden_states=True).hidden_states)


# -------------------------------------------------------------------------------------------------- loaders
def backbone_from(path: Path, arch: str) -> PVTv2:
    backbone = PVTv2(arch=arch, drop_path_rate=0.0, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    return backbone.eval()


def assert_same_maps(ours: PVTv2, reference_maps: list[torch.Tensor], x: torch.Tensor) -> None:
    with torch.no_grad():
        maps = ours(x)
    diffs = [rel_diff(a, b) for a, b in zip(maps, reference_maps)]
    assert len(diffs) == 4 and max(diffs) < TOLERANCE, diffs


def assert_same_tensors(loaded: dict, expected: dict) -> None:
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def assert_every_value_restored(backbone: nn.Module, reference_tensors) -> None:
    """Renaming, fusing key/value projections, splitting mmseg's in_proj and flattening 1x1 convs keep the
    multiset of numbers: the loaded backbone's values have the reference's count and power sums (a dropped,
    duplicated or altered tensor changes them; cheaper than sorting 25M values)."""
    def moments(tensors) -> list[float]:
        values = torch.cat([t.flatten().double() for t in tensors])
        return [values.numel()] + [values.pow(k).sum().item() for k in (1, 2, 3)]
    assert moments(backbone.state_dict().values()) == pytest.approx(moments(reference_tensors), rel=1e-9)


def official_state_as_ours(state: dict) -> dict:
    """The official module's tensors under pvt_det's names (test-side, independent of the converters)."""
    out = {}
    for key, value in state.items():
        if key.startswith('head.'):
            continue
        for i in range(1, 5):
            for old, new in ((f'patch_embed{i}.', f'stages.{i - 1}.patch_embed.'),
                             (f'block{i}.', f'stages.{i - 1}.blocks.'), (f'norm{i}.', f'stages.{i - 1}.norm.')):
                if key.startswith(old):
                    out[new + key[len(old):].replace('mlp.dwconv.dwconv.', 'mlp.dwconv.')] = value
    return out


# ---------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('arch', ARCHS)
def test_nvlabs_imagenet_file_loads_into_backbone_and_classifier(arch, image, tmp_path):
    reference = official_mit(arch, seed=1)
    path = tmp_path / f'{arch}.pth'
    torch.save(reference.state_dict(), path)  # NVlabs' mit_b*.pth: the bare state dict, head included
    backbone = backbone_from(path, arch)
    with torch.no_grad():
        assert_same_maps(backbone, official_maps(reference, image), image)
        assert_same_tensors(backbone.state_dict(), official_state_as_ours(reference.state_dict()))
        if arch == 'mit_b0':  # the ImageNet head once: it is the same code for every arch
            classifier = build_classifier(arch, num_classes=NUM_CLASSES, checkpoint=str(path), drop_path_rate=0.0)
            assert rel_diff(classifier.eval()(image), reference(image)) < TOLERANCE
    assert backbone.norm_eps == (1e-6, 1e-5)


@pytest.mark.parametrize('arch', ARCHS)
def test_mmseg_backbone_and_whole_segformer_files(arch, image, tmp_path):
    reference = mmseg_mit(arch, seed=2)
    with torch.no_grad():
        expected_maps = reference(image)
    backbone_file, whole_file = tmp_path / 'mit.pth', tmp_path / 'segformer.pth'
    torch.save({'state_dict': reference.state_dict()}, backbone_file)
    head = {'decode_head.conv_seg.weight': torch.zeros(NUM_CLASSES, 256, 1, 1)}
    torch.save({'state_dict': {**{f'backbone.{k}': v for k, v in reference.state_dict().items()}, **head}},
               whole_file)
    loaded = [backbone_from(backbone_file, arch)]
    if arch == 'mit_b0':  # a whole SegFormer checkpoint as a backbone's weights: the mmseg way, prefix='backbone.'
        whole = PVTv2(arch=arch, drop_path_rate=0.0,
                      init_cfg=dict(type='Pretrained', checkpoint=str(whole_file), prefix='backbone.'))
        whole.init_weights()
        loaded.append(whole.eval())
    for backbone in loaded:
        assert_same_maps(backbone, expected_maps, image)
        assert backbone.norm_eps == (1e-6, 1e-6)  # mmseg builds every LayerNorm with eps 1e-6
        assert_every_value_restored(backbone, reference.state_dict().values())


# MiT-b2 once (the largest file): the three classes differ only outside the encoder.
@pytest.mark.parametrize('arch,model_class', [('mit_b0', 'SegformerModel'),
                                              ('mit_b0', 'SegformerForImageClassification'),
                                              ('mit_b0', 'SegformerForSemanticSegmentation'),
                                              ('mit_b2', 'SegformerForSemanticSegmentation')])
def test_hugging_face_segformer_files(arch, model_class, image, tmp_path):
    config = hf_config(arch, num_labels=NUM_CLASSES, decoder_hidden_size=32)
    reference = perturb(getattr(transformers, model_class)(config), seed=3)
    reference.save_pretrained(tmp_path / 'hub')  # the hub's safetensors spelling (segformer.encoder.block...)
    with torch.no_grad():
        expected = hf_maps(reference, image)
    backbone = backbone_from(tmp_path / 'hub' / 'model.safetensors', arch)
    assert_same_maps(backbone, expected, image)
    assert backbone.norm_eps == (1e-5, 1e-5)  # transformers' Segformer builds every LayerNorm with torch's default
    encoder = [v for k, v in reference.state_dict().items() if not k.startswith(('decode_head.', 'classifier.'))]
    assert_every_value_restored(backbone, encoder)
    if model_class == 'SegformerForImageClassification':
        classifier = build_classifier(arch, num_classes=NUM_CLASSES, checkpoint=str(tmp_path / 'hub' /
                                                                                     'model.safetensors'))
        with torch.no_grad():
            assert rel_diff(classifier.eval()(image), reference(image).logits) < TOLERANCE


def test_transformers_5_in_memory_names_and_the_shared_encoder_converter(image, tmp_path):
    from pvt_det.models.backbones.pvt import segformer_encoder_to_ours
    reference = perturb(transformers.SegformerForSemanticSegmentation(hf_config('mit_b0', num_labels=3)), seed=4)
    state = reference.state_dict()
    assert any(key.startswith('segformer.stages.') for key in state)  # transformers 5's own names
    torch.save(state, tmp_path / 'v5.pth')
    with torch.no_grad():
        assert_same_maps(backbone_from(tmp_path / 'v5.pth', 'mit_b0'), hf_maps(reference, image), image)
    # GLPN's encoder has the same structure under another prefix: the converter takes the prefix
    renamed = {key.replace('segformer.', 'glpn.', 1): value for key, value in state.items()}
    converted = segformer_encoder_to_ours(renamed, 'glpn.encoder.')
    assert set(converted) == {f'backbone.{key}' for key in PVTv2(arch='mit_b0').state_dict()}


def test_layer_norm_eps_follows_the_origin_and_survives_our_own_checkpoints(tmp_path):
    reference = mmseg_mit('mit_b0', seed=6)
    torch.save(reference.state_dict(), tmp_path / 'mmseg.pth')
    backbone = backbone_from(tmp_path / 'mmseg.pth', 'mit_b0')
    assert backbone.norm_eps == (1e-6, 1e-6)
    torch.save(backbone.state_dict(), tmp_path / 'ours.pth')  # our layout: the eps rides in the metadata
    fresh = PVTv2(arch='mit_b0')
    assert fresh.norm_eps == (1e-6, 1e-5)  # the official code's, by default
    fresh.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True))
    assert fresh.norm_eps == (1e-6, 1e-6)
    layer_norms = [m for m in fresh.modules() if isinstance(m, nn.LayerNorm)]
    assert layer_norms and all(m.eps == 1e-6 for m in layer_norms)


def test_mmdet_pvt_v2_file_computes_what_mmdet_computes(tmp_path):
    """Issue 24: the mmdet layout used to load with the official eps (1e-5 in patch-embed/SR norms); mmdet's
    PyramidVisionTransformerV2 uses 1e-6 everywhere. With the origin's eps the maps agree to float32 rounding."""
    from mmdet.models.backbones import PyramidVisionTransformerV2
    reference = perturb(PyramidVisionTransformerV2(embed_dims=32, num_layers=[2, 2, 2, 2], num_heads=[1, 2, 5, 8],
                                                   mlp_ratios=[8, 8, 4, 4], drop_path_rate=0.0), seed=7)
    torch.save(reference.state_dict(), tmp_path / 'mmdet.pth')
    # Low-contrast input (small LayerNorm variances) is where eps shows: official eps gave 1.8e-4 here.
    x = 0.1 * torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(8))
    backbone = backbone_from(tmp_path / 'mmdet.pth', 'b0')
    with torch.no_grad():
        diffs = [rel_diff(a, b) for a, b in zip(backbone(x), reference(x))]
    assert max(diffs) < 1e-5, diffs
