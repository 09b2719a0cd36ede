"""timm's and transformers' feature APIs on pvt_det's backbones, tested the way those projects test their own
models: timm's ``test_model_forward_intermediates`` (tests/test_models.py) and transformers'
``BackboneTesterMixin`` (tests/test_backbone_common.py), then the semantics against timm's own ``pvt_v2``
(vendored: ``tests/_vendored_timm_pvt_v2.py``) and transformers' ``PvtV2Backbone``, and mm*'s behaviour unchanged.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models.backbones import PVT, CvT, PVTv2
from pvt_det.models.layout_export import official_state_dict

sys.path.insert(0, str(Path(__file__).parent))
import _vendored_timm_pvt_v2 as timm_pvt_v2  # noqa: E402

SMALL_V1 = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1],
                mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1])
SMALL_CVT = dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 1, 1])
BACKBONES = {
    'pvt_v2_b0': lambda **kw: PVTv2('b0', **kw),
    'mit_b0': lambda **kw: PVTv2('mit_b0', **kw),
    'pvt_v1': lambda **kw: PVT(SMALL_V1, **kw),
    'cvt': lambda **kw: CvT(SMALL_CVT, **kw),
}
TARGET_FFEAT_SIZE = 96  # timm's test input side for feature tests


class FeatureInfo:
    """The two queries of ``timm.models.FeatureInfo`` that timm's test makes."""

    def __init__(self, feature_info: list[dict], out_indices: int) -> None:
        self.info = feature_info[:out_indices]

    def channels(self) -> list[int]:
        return [info['num_chs'] for info in self.info]

    def reduction(self) -> list[int]:
        return [info['reduction'] for info in self.info]


# ------------------------------------------------------------------ timm: tests/test_models.py, as timm has it
@pytest.mark.parametrize('model_name', list(BACKBONES))
@pytest.mark.parametrize('batch_size', [1])
def test_model_forward_intermediates(model_name, batch_size):
    """Run a single forward pass with each model in feature extraction mode"""
    model = BACKBONES[model_name]()
    model.eval()
    feature_info = FeatureInfo(model.feature_info, len(model.feature_info))
    expected_channels = feature_info.channels()
    expected_reduction = feature_info.reduction()
    assert len(expected_channels) >= 3  # all models here should have at least 3 feature levels

    input_size = (3, TARGET_FFEAT_SIZE, TARGET_FFEAT_SIZE)
    output_fmt = 'NCHW'
    feat_axis, spatial_axis = 1, (2, 3)

    inpt = torch.randn((batch_size, *input_size))
    output, intermediates = model.forward_intermediates(inpt, output_fmt=output_fmt)
    assert len(expected_channels) == len(intermediates)
    spatial_size = input_size[-2:]
    for e, r, o in zip(expected_channels, expected_reduction, intermediates):
        assert e == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(spatial_size[0] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(spatial_size[1] / r) + 1
        assert o.shape[0] == batch_size
        assert not torch.isnan(o).any()

    output2 = model.forward_features(inpt)
    assert torch.allclose(output, output2)

    # Test that grad-checkpointing, if supported
    try:
        model.set_grad_checkpointing()
    except Exception:
        # throws if not supported, that's fine
        pass
    else:
        output3, _ = model.forward_intermediates(inpt, output_fmt=output_fmt)
        assert torch.allclose(output, output3, rtol=1e-4, atol=1e-5), 'Output does not match'


# ------------------------------------------------------------- the same semantics as timm's own pvt_v2
@pytest.fixture(scope='module')
def ours_and_timm():
    ours = PVTv2('b0').eval()
    timm_model = timm_pvt_v2.create_model('pvt_v2_b0', num_classes=0).eval()
    # Same weights: ours written in the official layout, renamed as timm's own checkpoint_filter_fn does.
    official = official_state_dict({f'backbone.{k}': v for k, v in ours.state_dict().items()}, 'pvt_v2')
    timm_model.load_state_dict(timm_pvt_v2.checkpoint_filter_fn(official, timm_model), strict=True)
    return ours, timm_model


@pytest.mark.parametrize('kwargs', [
    {}, dict(indices=2), dict(indices=[0, 2]), dict(indices=[-1]), dict(indices=(1, -1), norm=True),
    dict(indices=[1], stop_early=True), dict(indices=1, stop_early=True), dict(intermediates_only=True),
    dict(indices=[0, 3], intermediates_only=True, stop_early=True)], ids=str)
def test_forward_intermediates_matches_timm_pvt_v2(ours_and_timm, kwargs):
    ours, timm_model = ours_and_timm
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        mine, theirs = ours.forward_intermediates(x, **kwargs), timm_model.forward_intermediates(x, **kwargs)
    if not kwargs.get('intermediates_only'):
        (mine_final, mine), (theirs_final, theirs) = mine, theirs
        assert torch.allclose(mine_final, theirs_final, atol=1e-5)
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        assert torch.allclose(a, b, atol=1e-5)
    assert ours.feature_info == timm_model.feature_info


@pytest.mark.parametrize('kwargs,message', [
    (dict(indices=5), 'out of range'), (dict(indices=[4]), 'out of range'), (dict(indices=[-5]), 'out of range'),
    (dict(output_fmt='NHWC'), "only 'NCHW'")])
def test_forward_intermediates_rejects_what_timm_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PVTv2('b0').forward_intermediates(torch.randn(1, 3, 64, 64), **kwargs)


# ------------------------------------------ transformers: tests/test_backbone_common.py's BackboneTesterMixin
@pytest.mark.parametrize('model_name', list(BACKBONES))
def test_backbone_common_attributes(model_name):
    backbone = BACKBONES[model_name](out_indices=(1, 2))
    for attribute in ('stage_names', 'num_features', 'out_indices', 'out_features', 'out_feature_channels',
                      'channels'):
        assert hasattr(backbone, attribute), attribute
    assert backbone.num_features is not None
    assert len(backbone.channels) == len(backbone.out_indices)
    assert len(backbone.stage_names) == len(backbone.num_features)
    assert len(backbone.channels) <= len(backbone.num_features)
    assert len(backbone.out_feature_channels) == len(backbone.stage_names)


@pytest.mark.parametrize('model_name', list(BACKBONES))
def test_channels(model_name):
    model = BACKBONES[model_name](out_indices=(0, 2))
    assert len(model.channels) == len(model.out_features)
    num_features = model.num_features
    out_indices = [model.stage_names.index(feat) for feat in model.out_features]
    out_channels = [num_features[idx] for idx in out_indices]
    assert model.channels == out_channels
    model = BACKBONES[model_name](out_indices=(-1, ))  # transformers' default: the last stage
    assert model.channels == [num_features[-1]]


@pytest.mark.parametrize('model_name', list(BACKBONES))
def test_backbone_outputs(model_name):
    backbone = BACKBONES[model_name](out_indices=(0, 2)).eval()
    batch_size = 2
    with torch.no_grad():
        feature_maps = backbone(torch.randn(batch_size, 3, 64, 64))  # mm*'s forward: a tuple of maps
    assert isinstance(feature_maps, tuple)
    assert len(feature_maps) == len(backbone.channels)
    for feature_map, n_channels in zip(feature_maps, backbone.channels):
        assert tuple(feature_map.shape[:2]) == (batch_size, n_channels)


def test_stage_names_and_indices_are_pvt_v2_backbones():
    """transformers' PvtV2Backbone names its stages 'stage1'...'stage4' (no 'stem'), so its out_indices are
    mm*'s 0-based stage numbers: one list serves both."""
    transformers = pytest.importorskip('transformers')
    theirs = transformers.PvtV2Backbone(transformers.PvtV2Config(out_indices=[1, 3]))
    ours = PVTv2('b0', out_indices=(1, 3))
    assert ours.stage_names == theirs.stage_names
    assert list(ours.out_indices) == list(theirs.out_indices)
    assert ours.out_features == theirs.out_features
    assert ours.channels == list(theirs.channels)
    assert ours.num_features == list(theirs.num_features)


def test_mm_behaviour_is_unchanged():
    backbone = PVTv2('b0', out_indices=(1, 3)).eval()
    assert backbone.out_indices == (1, 3)
    assert backbone.out_channels == (64, 256)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = backbone(x)
        every = backbone.forward_intermediates(x, intermediates_only=True)  # all stages, whatever out_indices
    assert len(every) == 4 and [m.shape[1] for m in maps] == [64, 256]
    assert torch.equal(maps[0], every[1]) and torch.equal(maps[1], every[3])
