"""Training curves (loss, lr, validation metric) of work dirs' mmengine logs as a PNG (pvt_det.tools.analyze_logs).

    python tools/analyze_logs.py work_dirs/retinanet_pvt_v2_b0_fpn --out curves.png
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.analyze_logs import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
