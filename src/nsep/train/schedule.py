"""The learning-rate schedule every trainer shares, and the training clock that can end a run.

A linear warm-up over the first epoch, then a cosine to zero that ends at the last planned step
or, with a time budget (``--max-minutes``), when the training time runs out, whichever comes first.
A run with a budget therefore anneals fully within the time it was given.
"""

from __future__ import annotations

import math
import time

import torch

from nsep import distributed


class TrainingSchedule:
    """Warm-up and cosine over ``epochs * steps_per_epoch`` steps or ``max_seconds`` of training."""

    def __init__(self, optimiser: torch.optim.Optimizer, steps_per_epoch: int, epochs: int,
                 max_seconds: float | None = None):
        self.steps, self.total, self.max_seconds = steps_per_epoch, epochs * steps_per_epoch, max_seconds
        self.seconds = 0.0  # training time of the finished epochs (validation not counted)
        self._now = 0.0  # training time including the epoch under way
        self._began = 0.0
        self.lr = torch.optim.lr_scheduler.LambdaLR(optimiser, self._factor)

    def _factor(self, step: int) -> float:
        done = min(step, self.total) / self.total
        if self.max_seconds:
            done = max(done, min(1.0, self._now / self.max_seconds))
        return min(1.0, (step + 1) / self.steps) * 0.5 * (1 + math.cos(math.pi * done))

    def begin_epoch(self) -> None:
        self._began = time.time()

    def step(self) -> None:
        """One optimiser step done: advance the rate (by the group's mean clock when time-limited)."""
        if self.max_seconds:
            elapsed = distributed.all_sum([time.time() - self._began])[0] / distributed.world()
            self._now = self.seconds + elapsed
        self.lr.step()

    def end_epoch(self) -> None:
        self.seconds += distributed.all_sum([time.time() - self._began])[0] / distributed.world()
        self._now = self.seconds

    def progress(self, epochs_done: int) -> float:
        """How much of the run is done after ``epochs_done`` epochs: of its planned steps or, with a
        time budget, of its training time, whichever is further."""
        done = epochs_done * self.steps / self.total
        if self.max_seconds:
            done = max(done, self.seconds / self.max_seconds)
        return min(1.0, done)

    def out_of_time(self) -> bool:
        return self.max_seconds is not None and self.seconds >= self.max_seconds

    def get_last_lr(self) -> list[float]:
        return self.lr.get_last_lr()

    def state_dict(self) -> dict:
        return {"lr": self.lr.state_dict(), "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        if "lr" not in state:  # a checkpoint from before the clock was kept: the scheduler's state alone
            self.lr.load_state_dict(state)
            return
        self.lr.load_state_dict(state["lr"])
        self.seconds = self._now = state["seconds"]
