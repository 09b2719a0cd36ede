from . import backbones  # noqa: F401
from .checkpoint import CheckpointError, load_pretrained, register_layout  # noqa: F401
from .classifiers import build_classifier  # noqa: F401
