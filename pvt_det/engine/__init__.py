"""Training reliability for mmengine runs: nothing lost, every failure clear, resume exact.

* :class:`SafeCheckpointHook` writes checkpoints and the ``last_checkpoint`` pointer atomically and
  prunes old checkpoints only after the new one is on disk; it refuses to save NaN/Inf weights.
* :class:`FiniteLossHook` stops a run at the first NaN/Inf loss, before a NaN checkpoint is written.
* :class:`ResumableEpochBasedTrainLoop` / :class:`ResumableIterBasedTrainLoop` resume mid-epoch
  at the exact batch with the exact random state, so a resumed run repeats an uninterrupted one.

:func:`prepare_training_config` switches a config to these; ``tools/train.py`` applies it through
``pvt_det.tools_common.prepare_train_config``.
``--amp`` on CPU (bfloat16) is ``pvt_det.tools_common.CPUAmpOptimWrapper``.
"""
from .hooks import FiniteLossHook, NonFiniteLossError, NonFiniteWeightsError, SafeCheckpointHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .training import prepare_training_config

__all__ = [
    'SafeCheckpointHook', 'FiniteLossHook', 'NonFiniteLossError', 'NonFiniteWeightsError',
    'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop', 'prepare_training_config'
]
