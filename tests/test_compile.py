"""torch.compile (inductor) of the PVT backbones gives the eager outputs.

Kept cheap for the 2-core CI: two-stage, one-block archs, inference only (compiling the backward
graph too costs minutes there).
"""
import pytest
import torch

from pvt_det.models.backbones import PVT, PVTv2
from pvt_det.models.layers import Mlp

TINY = dict(embed_dims=[8, 16], num_heads=[1, 2], depths=[1, 1], mlp_ratios=[2, 2], sr_ratios=[2, 1])


@pytest.mark.parametrize('cls', [PVT, PVTv2], ids=['v1', 'v2'])
def test_compiled_backbone_equals_eager(cls, monkeypatch):
    # Bands of 2 stage-1 rows: eager inference runs the banded FFN, the compiled graph the plain one.
    monkeypatch.setattr(Mlp, 'band_bytes', 12 * 16 * 4 * 2)
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = cls(arch=TINY, out_indices=(0, 1)).eval()
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 32, 48)  # v1: not the stored 224 grid, so the position embeddings are resized
    with torch.no_grad():
        expected, got = model(x), compiled(x)
    assert len(got) == len(expected) == 2
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
