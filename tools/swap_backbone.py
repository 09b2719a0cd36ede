"""Give any mmdet/mmseg model config a pvt_det backbone (docs/swap_resnet.md):

    python tools/swap_backbone.py SRC ARCH --out DST [--keep-optimizer] [--pretrained FILE|URL|none]

The code is pvt_det.tools.swap_backbone, also installed as the console script pvt-det-swap-backbone.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.swap_backbone import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
