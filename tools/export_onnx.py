"""Export a backbone (any PVT v1/v2 or CvT variant) to ONNX with dynamic batch, height and width.

    python tools/export_onnx.py MODEL OUT.onnx --checkpoint WEIGHTS.pth [--verify] [--shape H W]
    python tools/export_onnx.py MODEL OUT.onnx --random-weights       # untrained, e.g. to time the graph

MODEL is a backbone name (pvt_small, pvt_v2_b2, cvt_13, ...) or a config (its model.backbone).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.export_onnx import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
