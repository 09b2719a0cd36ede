"""``tools/convert_weights.py --to official / timm / mmdet``: exact round trips, strict loading into timm's and
mmdet's own module definitions, whole detectors (backbone written, the rest named), nothing left on failure.

timm cannot be installed here (it needs torchvision); its PVT v2 module definitions are vendored in
``tests/_vendored_timm_pvt_v2.py`` (Apache-2.0, unchanged classes) and built as timm's ``create_model`` does.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models import build_classifier
from pvt_det.models.backbones import PVTv2
from pvt_det.tools.convert_weights import main as convert_main

sys.path.insert(0, str(Path(__file__).parent))
import _vendored_timm_pvt_v2 as timm_pvt_v2  # noqa: E402

from test_export_hf import randomised, rel_diff  # noqa: E402


def save_ours(model: torch.nn.Module, path: Path) -> Path:
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def convert(*argv: str) -> None:
    assert convert_main([str(arg) for arg in argv]) == 0


@pytest.mark.parametrize('name', ['pvt_v2_b0', 'pvt_tiny', 'cvt_13'])
def test_ours_official_ours_restores_every_tensor(name, tmp_path):
    """v2, v1 (the cls row joins the last position embedding and comes off again) and CvT classifiers."""
    model = randomised(build_classifier(name, num_classes=5))
    convert(save_ours(model, tmp_path / 'ours.pth'), tmp_path / 'official.pth', '--to', 'official')
    official = torch.load(tmp_path / 'official.pth')
    assert not any(key.startswith(('backbone.', 'stages.')) for key in official)  # the release's names
    convert(tmp_path / 'official.pth', tmp_path / 'back.pth')
    back = torch.load(tmp_path / 'back.pth')['state_dict']
    original = model.state_dict()
    assert sorted(back) == sorted(original)
    for key, value in original.items():
        assert torch.equal(back[key], value), key


# A bare backbone (num_classes=0) is the detector test's case below.
@pytest.mark.parametrize('variant,num_classes', [('pvt_v2_b0', 7)])
def test_timm_layout_loads_strictly_into_timm_pvt_v2(variant, num_classes, tmp_path):
    model = randomised(build_classifier(variant, num_classes) if num_classes else
                       PVTv2(variant.removeprefix('pvt_v2_')))
    convert(save_ours(model, tmp_path / 'ours.pth'), tmp_path / 'timm.pth', '--to', 'timm')
    timm_model = timm_pvt_v2.create_model(variant, num_classes=num_classes).eval()
    timm_model.load_state_dict(torch.load(tmp_path / 'timm.pth'), strict=True)
    backbone = model.backbone if num_classes else model
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for mine, theirs in zip(backbone(x), timm_model.forward_intermediates(x, intermediates_only=True),
                                strict=True):
            assert rel_diff(mine, theirs) < 1e-4
        if num_classes:
            assert rel_diff(model(x), timm_model(x)) < 1e-4


def test_mmdet_layout_loads_strictly_into_mmdet(tmp_path, capsys):
    from mmdet.models.backbones import PyramidVisionTransformerV2
    classifier = randomised(build_classifier('pvt_v2_b0', num_classes=3))
    model = classifier.backbone
    convert(save_ours(classifier, tmp_path / 'ours.pth'), tmp_path / 'mmdet.pth', '--to', 'mmdet')
    assert 'left out (not part of the backbone): head (2 tensors)' in capsys.readouterr().out
    reference = PyramidVisionTransformerV2(embed_dims=32, num_layers=[2, 2, 2, 2], num_heads=[1, 2, 5, 8],
                                           drop_path_rate=0.0).eval()
    reference.load_state_dict(torch.load(tmp_path / 'mmdet.pth')['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # mmdet's LayerNorms all use eps 1e-6 (ours: 1e-5 in two places): not bit-equal
        for mine, theirs in zip(model(x), reference(x), strict=True):
            assert rel_diff(mine, theirs) < 1e-4


def test_detector_checkpoint_writes_its_backbone_and_names_the_rest(tmp_path, capsys):
    backbone = randomised(PVTv2('b0'))
    detector = {f'backbone.{key}': value for key, value in backbone.state_dict().items()}
    detector.update({'neck.lateral_convs.0.conv.weight': torch.randn(8, 32, 1, 1),
                     'bbox_head.retina_cls.weight': torch.randn(9, 8, 3, 3),
                     'bbox_head.retina_cls.bias': torch.randn(9)})
    torch.save({'state_dict': detector, 'meta': {}}, tmp_path / 'det.pth')
    convert(tmp_path / 'det.pth', tmp_path / 'timm.pth', '--to', 'timm')
    out = capsys.readouterr().out
    assert 'left out (not part of the backbone): bbox_head (2 tensors), neck (1 tensor)' in out
    timm_model = timm_pvt_v2.create_model('pvt_v2_b0', num_classes=0).eval()
    timm_model.load_state_dict(torch.load(tmp_path / 'timm.pth'), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_diff(backbone(x)[-1], timm_model.forward_features(x)) < 1e-4


def test_impossible_export_says_why_and_writes_nothing(tmp_path, capsys):
    save_ours(PVTv2('b2_li'), tmp_path / 'li.pth')
    assert convert_main([str(tmp_path / 'li.pth'), str(tmp_path / 'mmdet.pth'), '--to', 'mmdet']) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'mmdet has no linear spatial-reduction attention' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['li.pth']


def test_cvt_activation_option_is_never_silently_ignored(tmp_path, capsys):
    save_ours(PVTv2('b0'), tmp_path / 'b0.pth')
    for extra, message in ((('--cvt-act', 'gelu'), 'no effect with --to ours'),
                           (('--to', 'hf', '--cvt-act', 'gelu'), "pvt_v2_b0 takes no ['act_cfg']")):
        assert convert_main([str(tmp_path / 'b0.pth'), str(tmp_path / 'out'), *extra]) == 1
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['b0.pth']


def test_converting_to_ours_names_the_layer_norm_eps_the_file_leaves_behind(tmp_path, capsys):
    """mmdet's PVT computes with LayerNorm eps 1e-6 everywhere. Converted in the model (init_cfg, load_from) its
    weights keep that eps; a file rewritten into pvt_det's layout does not record it, so the converter says so
    and names the file that keeps it. A source with pvt_det's own eps (official layout) gets no note."""
    from pvt_det.models.checkpoint import load_pretrained
    classifier = randomised(build_classifier('pvt_v2_b0', num_classes=3))
    convert(save_ours(classifier, tmp_path / 'ours.pth'), tmp_path / 'mmdet.pth', '--to', 'mmdet')
    convert(save_ours(classifier, tmp_path / 'ours.pth'), tmp_path / 'official.pth', '--to', 'official')
    capsys.readouterr()
    convert(tmp_path / 'mmdet.pth', tmp_path / 'from_mmdet.pth', '--backbone-only')
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith('note: the mmdet code computed these weights with LayerNorm eps 1e-06 (blocks) and 1e-06')
    assert f'load {tmp_path / "mmdet.pth"} itself' in note
    convert(tmp_path / 'official.pth', tmp_path / 'from_official.pth', '--backbone-only')
    assert 'note:' not in capsys.readouterr().out
    # What the note says: the original file gives mmdet's eps, the rewritten one pvt_det's.
    kept, rewritten = PVTv2('b0'), PVTv2('b0')
    load_pretrained(kept, str(tmp_path / 'mmdet.pth'), 'pvt_v2')
    load_pretrained(rewritten, str(tmp_path / 'from_mmdet.pth'), 'pvt_v2')
    assert kept.norm_eps == (1e-6, 1e-6) and rewritten.norm_eps == (1e-6, 1e-5)
