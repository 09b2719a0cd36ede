"""Train a detector (mmdet config) or a segmentor (mmseg config) with mmdet's tools/train.py flags.

    python tools/train.py configs/retinanet_pvt_small_fpn.py [--work-dir DIR] [--amp]
        [--auto-scale-lr] [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]

The code is pvt_det.tools.train, also installed as the console script pvt-det-train.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
