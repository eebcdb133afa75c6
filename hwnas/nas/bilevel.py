"""The bilevel step of the search: weights and architecture logits, each with its own optimiser.

The search (DESIGN.md, steps 3-4) is the bilevel problem of DARTS (Liu et al., "DARTS:
Differentiable Architecture Search", ICLR 2019, eq. 3-4):

    min_phi  L_val(w*(phi), phi)    subject to    w*(phi) = argmin_w L_train(w, phi)

where w are the candidates' weights, phi the architecture logits (alpha = softmax(phi/T)),
L_train the task loss, and L_val the paper's composite loss

    L = L_task / L_ref + mu * L_latency(alpha) + lambda(t) * H_norm(alpha)      (`hwnas.nas.objective`)

on a held-out batch. Like DARTS' first-order variant (its sec. 2.3 with xi = 0) the
inner problem is not unrolled: each search step alternates

1. `weight_step`: one AdamW step on w, minimising L_train on a "train" batch, phi held
   fixed (not even in the graph);
2. `arch_step`: one Adam step on phi, minimising L_val on an "arch" batch, w held fixed.

`joint_step` is the single-level alternative (`--single-level`): one "train" batch, the
full objective, one backward pass, both optimisers step.

Two optimisers chosen by parameter group: AdamW on the weights (`weight_parameters`) and
Adam with DARTS' betas (0.5, 0.999) on the logits (`arch_parameters`), so the learning
rate and momentum of one never move the other. In sampled mode, candidates that did not
run have no gradient and AdamW skips them (no momentum, no decay).

Every step checks its losses with `check` (the run's NaN guard, `hwnas.runs.run.guard`)
between the forward and the backward pass, and averages gradients over data-parallel
ranks (`hwnas.runs.distributed`) before the optimiser steps.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from hwnas.runs import distributed
from hwnas.nas.objective import Terms
from hwnas.nas.supernet import arch_parameters, weight_parameters

Check = Callable[[Iterable[tuple[str, torch.Tensor]]], None]  # raises if a named value is NaN or infinite

ARCH_BETAS = (0.5, 0.999)  # DARTS' Adam betas for the architecture


class Bilevel:
    """The weights' and the logits' optimisers of a super-net, and the three ways to step them."""

    def __init__(self, supernet: nn.Module, *, lr: float, arch_lr: float, weight_decay: float):
        self.weights, self.logits = weight_parameters(supernet), arch_parameters(supernet)
        self.weight_opt = torch.optim.AdamW(self.weights, lr=lr, weight_decay=weight_decay)
        self.arch_opt = torch.optim.Adam(self.logits, lr=arch_lr, betas=ARCH_BETAS)

    def set_weight_lr(self, lr: float) -> None:
        for group in self.weight_opt.param_groups:
            group["lr"] = lr

    def weight_step(self, task_loss: Callable[[], torch.Tensor], check: Check) -> float:
        """1. w <- AdamW(grad_w L_train) with phi fixed; returns L_train."""
        with frozen(self.logits):
            loss = task_loss()
        check([("task loss", loss)])
        self._descend(loss, [self.weight_opt], self.weights)
        return float(loss.detach())

    def arch_step(self, objective: Callable[[], Terms], check: Check) -> Terms:
        """2. phi <- Adam(grad_phi L_val) with w fixed; returns the objective's terms."""
        with frozen(self.weights):
            terms = objective()
        check(named(terms))
        self._descend(terms.total, [self.arch_opt], self.logits)
        return terms

    def joint_step(self, task_loss: Callable[[], torch.Tensor], objective: Callable[[torch.Tensor], Terms],
                   check: Check) -> tuple[float, Terms]:
        """Single-level: the objective of one "train" batch moves w and phi together."""
        loss = task_loss()
        check([("task loss", loss)])
        terms = objective(loss)
        check(named(terms))
        self._descend(terms.total, [self.weight_opt, self.arch_opt], self.weights + self.logits)
        return float(loss.detach()), terms

    @staticmethod
    def _descend(loss: torch.Tensor, optimisers: list[torch.optim.Optimizer], params: list[nn.Parameter]) -> None:
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)  # every rank steps with the same gradients
        for opt in optimisers:
            opt.step()

    def state(self) -> dict[str, Any]:
        return {"weight_optimizer": self.weight_opt.state_dict(), "arch_optimizer": self.arch_opt.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.weight_opt.load_state_dict(state["weight_optimizer"])
        self.arch_opt.load_state_dict(state["arch_optimizer"])


def named(terms: Terms) -> list[tuple[str, torch.Tensor]]:
    """The terms as the NaN guard names them ("latency term", ...)."""
    return [(f"{name} term", value) for name, value in terms.items()]


@contextlib.contextmanager
def frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """Hold `params` out of the autograd graph (their gradients are neither needed nor computed)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
