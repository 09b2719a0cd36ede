"""The README's main job on data that exists here: train and evaluate on a generated dataset.

    python tools/demo.py det   # RetinaNet-PVTv2-b0, COCO-format shapes dataset -> COCO box AP
    python tools/demo.py seg   # Semantic FPN-PVTv2-b0, ADE20K-layout shapes dataset -> mIoU

The code is pvt_det.tools.demo, also installed as the console script pvt-det-demo.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.demo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
