"""The shared learning-rate schedule: warm-up, cosine by steps, and the time budget that ends it early."""

import time

import pytest
import torch

from nsep.train.schedule import TrainingSchedule


def _schedule(max_seconds=None) -> tuple[TrainingSchedule, torch.optim.Optimizer]:
    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return TrainingSchedule(optimiser, steps_per_epoch=4, epochs=10, max_seconds=max_seconds), optimiser


def test_warm_up_then_cosine_by_steps():
    schedule, optimiser = _schedule()
    rates = []
    for _ in range(40):
        schedule.begin_epoch()
        optimiser.step()
        schedule.step()
        rates.append(optimiser.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(0.5, abs=0.01)  # second step of the four-step warm-up
    assert max(rates) <= 1.0 and rates[10] > rates[20] > rates[30] > rates[-1]
    assert rates[-1] < 1e-9 and not schedule.out_of_time()


def test_a_time_budget_anneals_to_zero_and_ends_the_run():
    schedule, optimiser = _schedule(max_seconds=0.05)
    schedule.begin_epoch()
    for _ in range(4):
        optimiser.step()
        schedule.step()
    assert optimiser.param_groups[0]["lr"] > 0.5  # few steps and little time so far
    time.sleep(0.06)
    optimiser.step()
    schedule.step()
    assert optimiser.param_groups[0]["lr"] < 1e-9  # the budget is spent: the cosine has ended
    assert not schedule.out_of_time()  # the epoch under way still finishes
    schedule.end_epoch()
    assert schedule.out_of_time()


def test_state_keeps_the_clock():
    schedule, optimiser = _schedule(max_seconds=100.0)
    schedule.begin_epoch()
    optimiser.step()
    schedule.step()
    schedule.end_epoch()
    restored, _ = _schedule(max_seconds=100.0)
    restored.load_state_dict(schedule.state_dict())
    assert restored.seconds == schedule.seconds > 0 and restored.lr.last_epoch == 1


def test_progress_counts_planned_epochs_or_spent_time_whichever_is_further():
    schedule, _ = _schedule()
    assert schedule.progress(0) == 0 and schedule.progress(5) == 0.5 and schedule.progress(10) == 1.0
    timed, _ = _schedule(max_seconds=10.0)
    timed.seconds = 7.5  # three quarters of the budget spent in the first epoch
    assert timed.progress(1) == 0.75
    timed.seconds = 30.0
    assert timed.progress(1) == 1.0
