"""What every backbone exposes to necks and pre-flight checks (out_channels / out_strides), and the argument
checks all families share."""
from __future__ import annotations

import re

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models import build_classifier
from pvt_det.models.backbones import PVT, PVTv2, CvT

PVT_TINY = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1],
                mlp_ratios=[8, 8, 4, 4], sr_ratios=[8, 4, 2, 1])
CVT_TINY = dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3], depths=[1, 1, 1])


@pytest.mark.parametrize('cls,arch,out_indices', [
    (PVT, 'small', (0, 1, 2, 3)), (PVTv2, 'b0', (1, 3)), (PVTv2, 'b2_li', (-1, )),
    (CvT, '13', (0, 1, 2)), (CvT, 'w24', (2, 0)),
    (PVTv2, PVT_TINY, (2, 0)), (PVT, {k: v[:2] for k, v in PVT_TINY.items()}, (1, 0)),
    (CvT, CVT_TINY, (1, )),
])
def test_out_channels_and_strides_describe_the_returned_maps(cls, arch, out_indices):
    """Read on the meta device (no weights), checked against a real forward's maps."""
    with torch.device('meta'):
        described = cls(arch, out_indices=out_indices)
        channels, strides = described.out_channels, described.out_strides
    assert isinstance(channels, tuple) and isinstance(strides, tuple)
    assert len(channels) == len(strides) == len(out_indices)
    size = 64
    with torch.device('meta'):  # shapes only; named archs are too big to run for real here
        maps = described.eval()(torch.empty(1, 3, size, size))
    assert channels == tuple(m.shape[1] for m in maps)
    assert strides == tuple(size // m.shape[-1] for m in maps)


def test_named_arch_values():
    with torch.device('meta'):
        assert PVT('tiny').out_strides == (4, 8, 16, 32)
        assert PVT('tiny').out_channels == (64, 128, 320, 512)
        assert PVTv2('b0').out_channels == (32, 64, 160, 256)
        assert CvT('13').out_strides == (4, 8, 16)
        assert CvT('13', out_indices=(2, 1)).out_channels == (384, 192)


def test_pvt_v2_validates_pretrain_img_size_like_v1():
    for cls in (PVT, PVTv2):
        with pytest.raises(ValueError, match=r'pretrain_img_size must be .*got \(224, 224, 224\)'):
            cls(PVT_TINY, pretrain_img_size=(224, 224, 224))
        with pytest.raises(ValueError, match='pretrain_img_size'):
            cls(PVT_TINY, pretrain_img_size=0)
    # v2 accepts (and ignores) a valid value: nothing depends on it
    assert PVTv2(PVT_TINY, pretrain_img_size=(96, 128)).out_channels == (16, 32, 48, 64)


@pytest.mark.parametrize('cls', [PVT, PVTv2, CvT])
@pytest.mark.parametrize('bad', [None, 'all', (True, ), (0.5, ), {0, 1}])
def test_bad_out_indices_get_one_clear_error(cls, bad):
    stages = 3 if cls is CvT else 4
    with pytest.raises(ValueError, match=re.escape(f'out_indices={bad!r} is out of range') +
                       rf'.*0\.\.{stages - 1}'):
        cls(out_indices=bad)


def test_custom_arch_wins_in_every_classifier_builder():
    cvt = build_classifier('cvt_13', num_classes=2, arch=CVT_TINY)
    assert cvt.backbone.arch_name == 'custom' and cvt.backbone.embed_dims == [8, 16, 24]
    assert cvt.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2)
    pvt = build_classifier('pvt_v2_b0', num_classes=2, arch=PVT_TINY)
    assert pvt.backbone.out_channels == (16, 32, 48, 64)
    assert build_classifier('cvt_21', num_classes=0).backbone.arch_name == '21'
