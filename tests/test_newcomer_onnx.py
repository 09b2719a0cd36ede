"""tools/export_onnx.py prints no "torchvision is not installed. Skipping torchvision::nms" lines (issue 24):
torch.onnx registers torchvision's four ops whenever it exports, a backbone uses none of them, and a user
without torchvision can do nothing about it. Other lines of that logger still pass."""
from __future__ import annotations

import logging

from pvt_det.tools import export_onnx

NOTE = 'torchvision is not installed. Skipping torchvision::'


def _registry_notes(caplog) -> list[str]:
    """The notes logged while torch.onnx builds its registry, as every torch.onnx.export(dynamo=True) does."""
    from torch.onnx._internal.exporter._registration import ONNXRegistry
    caplog.clear()
    ONNXRegistry.from_torchlib()
    return [record.getMessage() for record in caplog.records if NOTE in record.getMessage()]


def test_the_exporter_logs_the_notes_and_the_tool_drops_them(caplog):
    assert len(_registry_notes(caplog)) == 4  # nms, roi_align, roi_pool, deform_conv2d: what users saw
    with export_onnx._without_torchvision_notes():
        assert _registry_notes(caplog) == []
        logging.getLogger('torch.onnx._internal.exporter._registration').warning('another note')
        assert 'another note' in caplog.text
    assert len(_registry_notes(caplog)) == 4  # only while the tool exports


def test_export_runs_the_exporter_without_the_notes(tmp_path, caplog, monkeypatch):
    """export() wraps torch.onnx.export in the filter (the exporter itself is tests/test_onnx_export.py's)."""
    import torch
    from torch import nn

    class Saved:
        def save(self, path: str) -> None:
            open(path, 'wb').close()

    def fake_export(*args, **kwargs):
        from torch.onnx._internal.exporter._registration import ONNXRegistry
        ONNXRegistry.from_torchlib()
        return Saved()

    class TwoMaps(nn.Module):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [x, x]

    monkeypatch.setattr(torch.onnx, 'export', fake_export)
    assert export_onnx.export(TwoMaps(), str(tmp_path / 'm.onnx'), shape=(8, 8)) == ['stage0', 'stage1']
    assert (tmp_path / 'm.onnx').is_file() and NOTE not in caplog.text
