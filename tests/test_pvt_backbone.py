"""PVT v1/v2 backbones: shapes of every variant, parameter counts, training switches, input validation."""
from __future__ import annotations

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models import build_classifier
from pvt_det.models.backbones import PVT, PVTv2
from pvt_det.models.layers import Mlp

TINY = dict(embed_dims=[16, 32, 48, 64],
            num_heads=[1, 2, 3, 4],
            depths=[1, 2, 1, 1],
            mlp_ratios=[8, 8, 4, 4],
            sr_ratios=[8, 4, 2, 1])
VARIANTS = [(PVT, arch) for arch in PVT.arch_zoo] + [(PVTv2, arch) for arch in PVTv2.arch_zoo]
# Official ImageNet classifier sizes (millions of parameters), PVT and PVTv2 papers / whai362 README.
OFFICIAL_PARAMS = {
    'pvt_tiny': 13.2,
    'pvt_small': 24.5,
    'pvt_medium': 44.2,
    'pvt_large': 61.4,
    'pvt_v2_b0': 3.7,
    'pvt_v2_b1': 14.0,
    'pvt_v2_b2': 25.4,
    'pvt_v2_b2_li': 22.6,
    'pvt_v2_b3': 45.2,
    'pvt_v2_b4': 62.6,
    'pvt_v2_b5': 82.0
}


def expected_shapes(backbone, height: int, width: int, v2: bool) -> list[tuple[int, ...]]:
    shapes = []
    for i, dim in enumerate(backbone.embed_dims):
        if v2:  # overlapping conv with padding k // 2: ceil division
            height, width = -(-height // (4 if i == 0 else 2)), -(-width // (4 if i == 0 else 2))
        else:
            height, width = height // (4 if i == 0 else 2), width // (4 if i == 0 else 2)
        shapes.append((2, dim, height, width))
    return shapes


@pytest.mark.parametrize('cls,arch', VARIANTS, ids=[arch for _, arch in VARIANTS])
def test_every_variant_gives_stride_4_to_32_maps(cls, arch):
    # Shapes of the full-size variants are traced on the meta device (no arithmetic); the numerics of the same
    # code path are covered by the parity tests and by the real forwards below.
    with torch.device('meta'):
        backbone = cls(arch).eval()
        for size in [(224, 224), (200, 328)]:
            outs = backbone(torch.empty(2, 3, *size))
            assert [tuple(o.shape) for o in outs] == expected_shapes(backbone,
                                                                     *size,
                                                                     v2=cls is PVTv2)
    assert [tuple(o.shape[-2:]) for o in outs][0] == ((50, 82))


@pytest.mark.parametrize('cls,arch', [(PVT, 'tiny'), (PVTv2, 'b0')])
def test_real_forward_at_non_square_size(cls, arch):
    backbone = cls(arch).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 200, 328))
    assert [tuple(o.shape) for o in outs
            ] == [s[:0] + (1, ) + s[1:] for s in expected_shapes(backbone, 200, 328, cls is PVTv2)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('name', sorted(OFFICIAL_PARAMS))
def test_classifier_parameter_counts_match_official(name):
    with torch.device('meta'):
        model = build_classifier(name)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(OFFICIAL_PARAMS[name],
                                                                             abs=0.05)


@pytest.mark.parametrize('cls', [PVT, PVTv2])
def test_any_input_size_and_out_indices(cls):
    backbone = cls(TINY, out_indices=(1, -1)).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 45, 71))
    assert [o.shape[1] for o in outs] == [32, 64]
    assert outs[0].shape[-2:] == ((5, 8) if cls is PVT else (6, 9))  # stride 8: floor vs ceil


def test_classifiers_give_logits():
    x = torch.randn(2, 3, 64, 64)
    for name in ('pvt_tiny', 'pvt_v2_b0'):
        model = build_classifier(name, num_classes=5, arch=TINY, pretrain_img_size=64).eval()
        assert model(x).shape == (2, 5)
        assert build_classifier(name, num_classes=0, arch=TINY)(x).shape == (2, 64)


@pytest.mark.parametrize('cls', [PVT, PVTv2])
def test_frozen_stages_stay_unchanged_after_an_optimizer_step(cls):
    backbone = cls(TINY, frozen_stages=1,
                   drop_path_rate=0.0)  # no stochastic depth: every grad is nonzero
    backbone.train()
    assert not backbone.stages[0].training and not backbone.stages[1].training and backbone.stages[
        2].training
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.1)
    # a random projection: a plain sum of squares after v2's stage LayerNorm has ~zero gradient
    loss = sum(o.mul(torch.randn_like(o)).sum() for o in backbone(torch.randn(2, 3, 64, 64)))
    loss.backward()
    optimizer.step()
    after = backbone.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        assert changed == key.startswith(('stages.2.', 'stages.3.')), key


@pytest.mark.parametrize('cls', [PVT, PVTv2])
def test_with_cp_gives_the_same_gradients(cls):
    torch.manual_seed(0)
    plain = cls(TINY, drop_path_rate=0.0).train()
    checkpointed = cls(TINY, drop_path_rate=0.0, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 72, 56)
    grads = []
    for model in (plain, checkpointed):
        inputs = x.clone().requires_grad_()
        sum(o.square().sum() for o in model(inputs)).backward()
        grads.append([inputs.grad] + [p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _forward_with_band_bytes(model, x, band_bytes, monkeypatch):
    monkeypatch.setattr(Mlp, 'band_bytes', band_bytes)
    return model(x)


# 1 row per band, 3-4 rows (stage 1 of TINY at width 33: 128 hidden channels), and several bands in stage 2.
@pytest.mark.parametrize('band_bytes', [33 * 128 * 4, 33 * 128 * 4 * 3 + 1, 16 * 256 * 4 * 5])
@pytest.mark.parametrize('cls,extra', [(PVT, {}), (PVTv2, {}), (PVTv2, dict(linear=True))],
                         ids=['v1', 'v2', 'v2_linear'])
def test_inference_in_row_bands_equals_the_plain_forward(cls, extra, band_bytes, monkeypatch):
    """The banded FFN (inference only) carries the depthwise conv's boundary rows from band to band and pads
    only at the image edges: the same maps as the one-shot FFN, batch of 2, height not a multiple of the band."""
    torch.manual_seed(0)
    model = cls(dict(TINY, **extra)).eval()
    x = torch.randn(2, 3, 100, 132)  # stage 1: 25 x 33 tokens
    with torch.no_grad():
        plain = _forward_with_band_bytes(model, x, 0, monkeypatch)  # 0 rows per band: the plain forward
        banded = _forward_with_band_bytes(model, x, band_bytes, monkeypatch)
    for a, b in zip(plain, banded, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_row_bands_are_never_used_when_autograd_records_or_autocast(monkeypatch):
    """Training, or an eval-mode forward with gradients (e.g. saliency), needs the plain graph; so does autocast."""
    monkeypatch.setattr(Mlp, 'band_bytes', 33 * 128 * 4)
    calls = []
    original = Mlp._forward_in_bands
    monkeypatch.setattr(Mlp, '_forward_in_bands', lambda *args: calls.append(1) or original(*args))
    model = PVTv2(TINY).eval()
    x = torch.randn(1, 3, 100, 132)
    sum(o.sum() for o in model(x)).backward()
    assert calls == [] and all(p.grad is not None for p in model.parameters())
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert model(x)[0].dtype == torch.bfloat16 and calls == []  # autocast: the plain path, in bf16
    with torch.no_grad():
        model(x)
    assert calls  # the same forward without autograd does use them


def test_v1_position_embedding_cache_follows_the_weights():
    backbone = PVT(TINY, pretrain_img_size=64).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        first = backbone(x)
        assert backbone(x)[0].equal(first[0])
        assert backbone.stages[0]._pos_cache, 'resized embedding is cached per input size'
        backbone.stages[0].pos_embed.add_(1.0)  # as an optimizer step would
        changed = backbone(x)
        fresh = PVT(TINY, pretrain_img_size=64).eval()
        fresh.load_state_dict(backbone.state_dict())
        assert not changed[0].equal(first[0])
        torch.testing.assert_close(changed[0], fresh(x)[0])
    assert not any('cache' in key for key in backbone.state_dict())
    # while training, the resize stays in the graph so the stored grid gets gradients
    backbone.train()
    backbone(x)[0].sum().backward()
    assert backbone.stages[0].pos_embed.grad.abs().sum() > 0


def test_built_from_mmdet_and_mmseg_registries():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for registry in (DET, SEG):
        backbone = registry.build(dict(type='PVTv2', arch=TINY, out_indices=(3, )))
        assert isinstance(backbone, PVTv2)
        assert isinstance(registry.build(dict(type='PVT', arch='tiny')), PVT)


def test_clear_errors_for_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"unknown PVTv2 arch 'b9'.*'b0'.*'b2_li'"):
        PVTv2('b9')
    with pytest.raises(ValueError, match=r"unknown PVT arch 'b0'.*'large'.*'tiny'"):
        PVT('b0')
    with pytest.raises(ValueError, match=r'missing \[.sr_ratios.\]'):
        PVTv2({k: v for k, v in TINY.items() if k != 'sr_ratios'})
    with pytest.raises(ValueError, match=r'out_indices=\(0, 4\) is out of range.*0\.\.3'):
        PVTv2(TINY, out_indices=(0, 4))
    with pytest.raises(ValueError, match=r'frozen_stages=4 is out of range'):
        PVT(TINY, frozen_stages=4)
    backbone = PVTv2(TINY).eval()
    with pytest.raises(ValueError,
                       match=r'in_channels=3 but the input has 1 channels.*pass in_channels=1'):
        backbone(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError,
                       match=r'expects an \(N, C, H, W\) image tensor, got \(3, 64, 64\)'):
        backbone(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match=r'16x64 pixels is too small.*at least 29'):
        backbone(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match=r'at least 32'):
        PVT(TINY)(torch.randn(1, 3, 64, 31))
    assert PVT(TINY, in_channels=1).eval()(torch.randn(1, 1, 32, 32))[3].shape == (1, 64, 1, 1)
