"""tools/export_onnx.py: dynamic-size ONNX graphs of the backbones agree with PyTorch in onnxruntime."""
import os.path as osp

import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from pvt_det.models.backbones import PVT, PVTv2  # noqa: E402
from pvt_det.models.layers import Mlp  # noqa: E402
from helpers import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
export_onnx = load_tool('export_onnx')

TINY = dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2],
            sr_ratios=[8, 4, 2, 1])


# v1: conv SR + position embeddings resized in the graph; v2 linear: overlapping embeds, depthwise-conv FFN,
# adaptive pooling (whose own export is not size-generic: tools/export_onnx.py swaps it for matmuls).
@pytest.mark.parametrize('cls, extra', [(PVT, {}), (PVTv2, dict(linear=True))], ids=['v1', 'v2_linear'])
def test_exported_backbone_matches_eager_at_two_sizes(cls, extra, tmp_path, monkeypatch):
    # Bands of 3 stage-1 rows: eager inference runs the banded FFN, the export must not (fixed sizes).
    monkeypatch.setattr(Mlp, 'band_bytes', 16 * 16 * 4 * 3)
    torch.manual_seed(0)
    # v1 exported at exactly its stored position grid: the graph must still resize for other sizes.
    kwargs = dict(pretrain_img_size=64) if cls is PVT else {}
    model = cls(arch=dict(TINY, **extra), out_indices=(0, 1, 2, 3), **kwargs).eval()
    path = str(tmp_path / 'backbone.onnx')
    with torch.no_grad():  # as a deployment script would: the banded FFN would run, were it not for tracing
        names = export_onnx.export(model, path, shape=(64, 64))
    assert names == ['stage0', 'stage1', 'stage2', 'stage3']
    for shape in [(64, 64), (96, 160), (112, 112)]:
        x = torch.randn(2, 3, *shape)
        with torch.no_grad():
            expected = model(x)
        got = export_onnx.run_onnx(path, x)
        assert [tuple(o.shape) for o in got] == [tuple(o.shape) for o in expected]
        for a, b in zip(expected, got):
            assert (a - b).abs().max() / a.abs().max() < 1e-4


def test_cli_rejects_an_unknown_model_in_one_line(tmp_path):
    from helpers import run_tool_in_process
    result = run_tool_in_process('export_onnx', 'pvt_huge', tmp_path / 'x.onnx')
    assert result.returncode == 1
    assert 'pvt_huge' in result.stderr and 'pvt_v2_b2' in result.stderr
    assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_export_without_weights_is_refused_unless_random_weights_are_asked_for(tmp_path, capsys):
    """An export of an untrained network is almost never meant: without --checkpoint the tool refuses,
    naming the pretrained file the config points at (which the export does not load)."""
    out = tmp_path / 'backbone.onnx'
    config = osp.join(REPO, 'configs', 'retinanet_pvt_v2_b0_fpn.py')
    assert export_onnx.main([config, str(out)]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and 'random weights' in message and '--random-weights' in message
    assert 'pvt_v2_b0.pth' in message and '--checkpoint' in message  # the config's init_cfg, named
    assert export_onnx.main(['pvt_v2_b0', str(out)]) == 1
    assert 'no --checkpoint' in capsys.readouterr().err and not out.exists()
    # Asked for, random weights build (and the config's pretrained file is not fetched).
    model = export_onnx.build_backbone(config, random_weights=True)
    assert type(model).__name__ == 'PVTv2' and not model.training
