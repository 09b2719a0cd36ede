"""Parameters and FLOPs of a config's model, or of a classifier/backbone by name (pvt_det.tools.get_flops).

    python tools/get_flops.py pvt_v2_b2                        # classifier at 224x224: ~4.0 G
    python tools/get_flops.py configs/retinanet_pvt_v2_b2_fpn.py --shape 800 1216
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.get_flops import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
