"""Train loops that resume a killed run at the exact batch and random state it stopped at.

mmengine's ``EpochBasedTrainLoop`` resumed from a mid-epoch (by-iteration) checkpoint restarts the
epoch from its first batch, so it trains some batches twice and drifts from the uninterrupted run.
``ResumableEpochBasedTrainLoop`` skips the batches of the current epoch that were already trained
(the sampler is seeded by epoch, so the order is the same) and then restores the random state saved
by :class:`~pvt_det.engine.SafeCheckpointHook`, so augmentation and drop-path draw the same numbers.

Data-loader worker processes keep their own random state, which no checkpoint can capture: with
``num_workers > 0`` and ``persistent_workers=True`` augmentation after a resume in a later epoch can
differ from an uninterrupted run. ``num_workers=0`` (or non-persistent workers) makes it exact.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from .rng import restore_rng_state


class ResumableLoopMixin:
    # Set by SafeCheckpointHook.after_load_checkpoint when resuming; applied once the data loader
    # is back at the batch the checkpoint was saved after.
    resume_rng_state: Optional[dict[str, Any]] = None

    def _restore_rng_after_fast_forward(self) -> None:
        if self.resume_rng_state is not None:
            restore_rng_state(self.resume_rng_state)
            self.resume_rng_state = None


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(ResumableLoopMixin, EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes mid-epoch at the next untrained batch."""

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._iter - self._epoch * len(
            self.dataloader)  # batches of this epoch already trained
        if not 0 <= done <= len(self.dataloader):
            print_log(
                f'iteration {self._iter} does not fall in epoch {self._epoch + 1} of '
                f'{len(self.dataloader)} batches (did the dataset or batch size change since the '
                'checkpoint?); training the whole epoch', logger='current', level=logging.WARNING)
            done = 0
        batches = iter(self.dataloader)
        if done > 0:
            print_log(
                f'Resuming epoch {self._epoch + 1} at batch {done + 1}: skipping the {done} '
                'batches already trained', logger='current', level=logging.INFO)
            for _ in range(done):
                next(batches)
        self._restore_rng_after_fast_forward()
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


class RestartingDataloaderIterator(_InfiniteDataloaderIterator):
    """mmengine's endless iterator over a data loader, without its 2 s pause at each restart when the
    loader has no worker processes. The pause guards the shutdown of worker processes; without any
    it only idles the run, and a small dataset restarts every few iterations (``make demo``: 9 restarts,
    a 2-image dataset: every step). mmengine's advice to use ``InfiniteSampler`` is logged once."""

    def __next__(self):
        if self._dataloader.num_workers > 0:
            return super().__next__()
        try:
            return next(self._iterator)
        except StopIteration:
            if self._epoch == 0:
                print_log('Reached the end of the data loader: it restarts each time (an '
                          "'InfiniteSampler' in train_dataloader.sampler avoids that)", logger='current')
            self._epoch += 1
            loader = self._dataloader
            for sampler in (getattr(loader, 'sampler', None),
                            getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)):
                if hasattr(sampler, 'set_epoch'):
                    sampler.set_epoch(self._epoch)
                    break
            self._iterator = iter(loader)
            return next(self._iterator)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(ResumableLoopMixin, IterBasedTrainLoop):
    """``IterBasedTrainLoop`` (it already skips trained batches) that also restores the random
    state, and restarts a data loader without worker processes without pausing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Re-classed, not rebuilt: a second iter() of the loader would draw its seed again.
        self.dataloader_iterator.__class__ = RestartingDataloaderIterator

    def run(self) -> None:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(
                f'Advance dataloader {self._iter} steps to skip data that has already been '
                'trained', logger='current', level=logging.INFO)
            for _ in range(self._iter):
                next(self.dataloader_iterator)
        self._restore_rng_after_fast_forward()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
