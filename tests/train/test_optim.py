"""Schedules against torch's own schedulers, optimizers against their definitions."""

from __future__ import annotations

import math

import pytest
import torch

from nnstudy.spec import OptimSpec, ScheduleSpec
from nnstudy.train.optim import LRSchedule, build_optimizer

STEPS, EPOCHS, LR = 7, 12, 0.3


def _torch_rates(make_sched, per_step: bool) -> list[float]:
    """Learning rate torch uses at every step of the run."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=LR)
    sched = make_sched(opt)
    rates = []
    for _epoch in range(EPOCHS):
        for _ in range(STEPS):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_step:
                sched.step()
        if not per_step:
            sched.step()
    return rates


@pytest.mark.parametrize(
    "spec,make,per_step",
    [
        (ScheduleSpec(name="step", step_size=3, gamma=0.5),
         lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), False),
        (ScheduleSpec(name="exponential", gamma=0.8),
         lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8), False),
        (ScheduleSpec(name="cosine", min_lr=0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, STEPS * EPOCHS, eta_min=0.01), True),
        (ScheduleSpec(name="onecycle", pct_start=0.3),
         lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=LR, total_steps=STEPS * EPOCHS,
                                                       pct_start=0.3, anneal_strategy="cos",
                                                       cycle_momentum=False), True),
    ],
)
def test_schedules_match_torch(spec, make, per_step):
    ours = LRSchedule(spec, LR, STEPS, EPOCHS)
    theirs = _torch_rates(make, per_step)
    got = [ours.rate(t) for t in range(STEPS * EPOCHS)]
    assert got == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_warmup_ramps_linearly_then_follows_schedule():
    s = LRSchedule(ScheduleSpec(name="constant", warmup_epochs=2), LR, STEPS, EPOCHS)
    warm = [s.rate(t) for t in range(2 * STEPS)]
    assert warm == pytest.approx([LR * (t + 1) / (2 * STEPS) for t in range(2 * STEPS)])
    assert s.rate(2 * STEPS) == pytest.approx(LR)
    assert not s.is_constant


def test_plateau_matches_torch_reduce_on_plateau():
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8]
    ours = LRSchedule(ScheduleSpec(name="plateau", patience=2, factor=0.5), LR, 1, len(losses))
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=LR)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    for loss in losses:
        ours.end_epoch(loss)
        ref.step(loss)
        assert ours.rate(0) == pytest.approx(opt.param_groups[0]["lr"])
    assert ours.rate(0) < LR  # it did reduce


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adadelta"])
def test_every_optimizer_descends(name):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(20))
    lr = 50.0 if name == "adadelta" else 0.05  # adadelta's first steps are ~sqrt(eps) × lr
    opt = build_optimizer(OptimSpec(name=name, lr=lr), [w])
    start = float((w.detach() ** 2).sum())
    for _ in range(50):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert float((w.detach() ** 2).sum()) < 0.9 * start


def test_weight_decay_is_l2_for_sgd_and_decoupled_for_adamw():
    w = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer(OptimSpec(name="sgd", lr=0.1, weight_decay=0.5), [w])
    w.grad = torch.zeros(3)
    opt.step()  # zero loss gradient: the step is lr × wd × w
    assert torch.allclose(w.detach(), torch.full((3,), 1 - 0.1 * 0.5))
    v = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer(OptimSpec(name="adamw", lr=0.1, weight_decay=0.5), [v])
    v.grad = torch.zeros(3)
    opt.step()  # decoupled: w ← w (1 − lr·wd), Adam's own step is 0 for a zero gradient
    assert torch.allclose(v.detach(), torch.full((3,), 1 - 0.1 * 0.5))


def test_nesterov_without_momentum_is_rejected():
    with pytest.raises(ValueError, match="nesterov"):
        OptimSpec(name="sgd", nesterov=True)
    assert math.isclose(OptimSpec(name="sgd", nesterov=True, momentum=0.9).momentum, 0.9)
