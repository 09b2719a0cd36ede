"""What a backbone sees: stage maps and the attention of query points in one PNG (pvt_det.tools.vis_features).

    python tools/vis_features.py IMAGE --arch pvt_v2_b2 --out OUT.png
    python tools/vis_features.py IMAGE --config CONFIG --checkpoint CKPT --points 120,80 --out OUT.png
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.vis_features import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
