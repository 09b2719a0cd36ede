from . import backbones  # noqa: F401
from . import decode_heads  # noqa: F401
from .checkpoint import CheckpointError, load_pretrained, register_layout  # noqa: F401
from .classifiers import build_classifier  # noqa: F401
from .conversion import convert_checkpoint_file  # noqa: F401
from .model_checkpoint import fit_checkpoint_file, fit_state_dict  # noqa: F401
