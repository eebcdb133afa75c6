"""The search's length-aware plan: warm-up, the entropy weight lambda(t), the logits' step size.

The paper grows the entropy weight exponentially over the epochs so that the search
explores early and commits late. A fixed per-epoch ratio r ties commitment to an
absolute epoch count: a short run never commits, a long one commits early. Here the
same exponential form is planned over the run's own length:

    lambda(s) = lambda_start * (lambda_end / lambda_start) ** ((s - s_start) / (s_end - s_start))

with s counted in architecture steps (fractional epochs after warm-up), lambda_start
= lambda0 and lambda_end = lambda0 * growth for a fresh run. So `--entropy-growth G`
means "lambda ends G times where it starts", whatever the length.

A run extended with `--resume --epochs N` re-plans from where it is: the new plan
starts at the current step with the current lambda and still ends at lambda0 * G, now
at the new last step -- no jump, and the extension ends exactly as decisive as a run
planned that long from the start would.

The logits' Adam step size: Adam moves each logit by about `arch_lr` per step, and a
position is decisive (largest alpha >= 0.8 of K = 4) at a logit gap of about
ln(0.8 / (0.2 / 3)) = 2.5. A short search with a fixed step size cannot get there;
`auto_arch_lr` gives every run the same total travel (`ARCH_TRAVEL` logit units over
its architecture steps), never less than `MIN_ARCH_LR`. Travel 10 was not enough at the
paper preset in sampled mode: a 300-step search ended with two candidates near-tied at one
position (largest alpha 0.69; `benchmarks/results/paper_commit.csv`), as the sampled
gradients keep the logits wandering until the entropy term dominates; 20 commits it.

The weights' learning rate follows a cosine from `lr` to `min_lr` over the run's steps
(`CosinePlan`), as `hwnas train` does; an extension re-plans from the current rate.
A constant rate (`min_lr` = `lr`, the only behaviour before) let a 600-step sampled
paper-preset search diverge at step ~503: the weight gradients had shrunk 50-fold, so had
Adam's second moments, and the first larger gradients moved the weights by many times
the rate (`benchmarks/results/paper_commit.csv`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

WARMUP_FRACTION = 0.2  # share of the epochs that train only weights, by default
ARCH_TRAVEL = 20.0  # logit units a logit could travel over a run, by default
MIN_ARCH_LR = 0.02


def cosine_lr(progress: float, lr: float, min_lr: float) -> float:
    """Cosine annealing (Loshchilov & Hutter, SGDR 2017) from lr at progress 0 to min_lr at 1."""
    progress = min(max(progress, 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def auto_warmup_epochs(epochs: int) -> int:
    """WARMUP_FRACTION of the epochs (rounded), leaving at least one architecture epoch."""
    return max(0, min(epochs - 1, round(WARMUP_FRACTION * epochs)))


def auto_arch_lr(arch_steps: int) -> float:
    """The logits' learning rate that lets them travel ARCH_TRAVEL over `arch_steps` steps."""
    return max(MIN_ARCH_LR, ARCH_TRAVEL / max(1, arch_steps))


@dataclass(frozen=True)
class Plan:
    """A value planned over a run's steps, from (start_step, start) to (end_step, end), held at the
    ends outside that range; an extended run re-plans from the current value to the same end."""

    start_step: int
    end_step: int
    start: float
    end: float

    def fraction(self, step: float) -> float:
        span = self.end_step - self.start_step
        return 1.0 if span <= 0 else min(1.0, max(0.0, (step - self.start_step) / span))

    def at(self, step: float) -> float:
        raise NotImplementedError

    def extended(self, step: int, end_step: int) -> "Plan":
        """The plan for a run extended to `end_step`: from the current value to the same end -- no jump."""
        if end_step == self.end_step:
            return self
        return replace(self, start_step=step, end_step=max(end_step, step + 1), start=self.at(step))

    def as_dict(self) -> dict[str, float]:
        return {"start_step": self.start_step, "end_step": self.end_step, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class EntropyPlan(Plan):
    """lambda as an exponential in the architecture step."""

    @classmethod
    def fresh(cls, lambda0: float, growth: float, arch_steps: int) -> "EntropyPlan":
        return cls(0, max(1, arch_steps), float(lambda0), float(lambda0) * float(growth))

    def at(self, arch_step: float) -> float:
        if self.start <= 0 or self.end <= 0:
            return 0.0
        return self.start * math.exp(self.fraction(arch_step) * math.log(self.end / self.start))


@dataclass(frozen=True)
class CosinePlan(Plan):
    """A learning rate annealed with a cosine in the step."""

    @classmethod
    def fresh(cls, lr: float, min_lr: float, steps: int) -> "CosinePlan":
        return cls(0, max(1, steps), float(lr), float(min_lr))

    def at(self, step: float) -> float:
        return cosine_lr(self.fraction(step), self.start, self.end)
