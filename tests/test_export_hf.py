"""``tools/convert_weights.py --to hf``: randomised pvt_det models, written as Hugging Face directories, load with
``transformers.AutoModel.from_pretrained`` and compute the same stage maps (and logits, for a classifier)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pvt_det  # noqa: F401  (registers the backbones)
from pvt_det.models import build_classifier
from pvt_det.models.backbones import CvT, PVTv2
from pvt_det.models.checkpoint import CheckpointError
from pvt_det.models.layout_export import export_model
from pvt_det.tools.convert_weights import main as convert_main

transformers = pytest.importorskip('transformers')

GELU = dict(type='GELU')  # transformers' CvT computes exact GELU (the official CvT: QuickGELU)


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter moved off its initial value (LayerNorm weights off 1, biases off 0), BatchNorm
    statistics too: a renaming mistake cannot hide behind a constant."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
        for name, buffer in model.named_buffers():
            if name.endswith('running_mean'):
                buffer.copy_(0.2 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith('running_var'):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
    return model.eval()


def rel_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def write_hf(model: nn.Module, folder, name: str, *extra: str):
    """Save ``model`` as a pvt_det checkpoint and convert it with the command line tool."""
    src, dst = folder / f'{name}.pth', folder / f'{name}_hf'
    torch.save({'state_dict': model.state_dict()}, src)
    assert convert_main([str(src), str(dst), '--to', 'hf', *extra]) == 0
    return dst


CASES = {
    'pvt_v2_b0': (lambda: PVTv2('b0'), 'PvtV2Model', ()),
    'pvt_v2_b2_li': (lambda: PVTv2('b2_li'), 'PvtV2Model', ()),
    'cvt_13': (lambda: CvT('13', act_cfg=GELU), 'CvtModel', ('--cvt-act', 'gelu')),
    'mit_b0': (lambda: PVTv2('mit_b0'), 'SegformerModel', ()),
}


@pytest.mark.parametrize('name', list(CASES))
def test_backbone_written_for_transformers_computes_the_same_stage_maps(name, tmp_path):
    build, hf_class, extra = CASES[name]
    ours = randomised(build())
    dst = write_hf(ours, tmp_path, name, *extra)
    assert sorted(p.name for p in dst.iterdir()) == ['config.json', 'model.safetensors']
    theirs = transformers.AutoModel.from_pretrained(dst).eval()
    assert type(theirs).__name__ == hf_class
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        mine = ours(x)
        maps = theirs(x, output_hidden_states=True).hidden_states
    assert len(maps) == len(mine) == ours.num_stages
    for stage, (a, b) in enumerate(zip(mine, maps)):
        assert rel_diff(a, b) < 1e-4, f'{name} stage {stage + 1}'


def test_classifier_becomes_for_image_classification(tmp_path):
    ours = randomised(build_classifier('pvt_v2_b0', num_classes=7), seed=1)
    dst = write_hf(ours, tmp_path, 'cls')
    theirs = transformers.AutoModelForImageClassification.from_pretrained(dst).eval()
    assert type(theirs).__name__ == 'PvtV2ForImageClassification'
    assert type(transformers.AutoModel.from_pretrained(dst)).__name__ == 'PvtV2Model'  # the encoder alone
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_diff(ours(x), theirs(x).logits) < 1e-4


def test_quick_gelu_cvt_is_refused_and_nothing_is_left(tmp_path):
    """transformers' CvT cannot compute the official QuickGELU: the check measures it and writes nothing."""
    tiny = randomised(CvT(dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 2, 3])))
    with pytest.raises(CheckpointError, match=r'not written: .*QuickGELU'):
        export_model(tiny, tmp_path / 'out', 'hf')
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_pvt_v1_goes_as_its_classifier_at_its_pretrain_size(tmp_path):
    """transformers' PvtModel runs at its configured size and always has a stage-4 cls token: a v1 classifier
    carries over (logits equal), a bare v1 backbone is refused with the reason."""
    from pvt_det.models.backbones import PVT
    from pvt_det.models.classifiers import PVTClassifier
    arch = dict(embed_dims=[16, 32, 48, 64], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1],
                mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1])
    ours = randomised(PVTClassifier(PVT(arch, pretrain_img_size=64), num_classes=5))
    report = export_model(ours, tmp_path / 'v1', 'hf')
    assert report.written_as == 'PvtForImageClassification' and report.max_rel_diff < 1e-4
    theirs = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / 'v1').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_diff(ours(x), theirs(x).logits) < 1e-4
    with pytest.raises(CheckpointError, match='cls token into stage 4'):
        export_model(ours.backbone, tmp_path / 'v1_backbone', 'hf')
    assert not (tmp_path / 'v1_backbone').exists()
