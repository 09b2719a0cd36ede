"""Predict one image and draw the result with mmdet's / mmseg's visualizer.

    python tools/infer.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3] [--device cpu]

The code is pvt_det.tools.infer, also installed as the console script pvt-det-infer.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.infer import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
