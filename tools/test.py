"""Evaluate a checkpoint on a config's test set (COCO AP for mmdet configs, mIoU for mmseg ones).

    python tools/test.py configs/retinanet_pvt_small_fpn.py work_dirs/.../epoch_12.pth
        [--out results.pkl] [--show-dir DIR] [--tta] [--work-dir DIR] [--cfg-options ...]

The code is pvt_det.tools.test, also installed as the console script pvt-det-test.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.test import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
