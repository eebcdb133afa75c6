"""The super-net: every choice position mixes (or samples) its candidates.

`to_supernet(net, mode, temperature)` replaces each `ChoiceBlock` of a space's network,
in place, with a `MixedChoice` that keeps the same candidate modules under the same
attribute (`candidates`) and adds the architecture logits phi as a parameter named
`logits`. So a super-net's `state_dict` keys are

    <position path>.candidates.<candidate>.<param>    (candidate weights)
    <position path>.logits                            (phi, one entry per candidate)

and `hwnas.freeze` works on a super-net directly (a `MixedChoice` is a `ChoiceBlock`).

alpha = softmax(phi / T). Two ways to run a position:

- ``soft`` (the paper's): the output is sum_i alpha_i * candidate_i(x). Every
  candidate runs every step: compute and activation memory grow with K.
- ``sampled`` (our addition; straight-through Gumbel-softmax, Jang et al. 2017):
  g ~ Gumbel(0, 1) per candidate, y = softmax(phi / T + g), k = argmax y (so k is
  drawn from alpha). Only candidate k runs; its output is multiplied by
  (one_hot(k) - y.detach() + y)[k], which is exactly 1 in value while its gradient
  reaches phi through y. Candidates that did not run get no gradient (`grad` stays
  None, which `torch.optim` skips entirely -- no momentum, no weight decay).

The Gumbel noise is a pure function of (seed, epoch, step, phase) (`draw_gumbel`), not
of the global RNG, so a resumed run and every rank of a data-parallel run draw the
same paths. In eval mode, a sampled super-net runs each position's argmax candidate.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import torch
from torch import nn

from hwnas.contracts.space import Architecture, ChoiceBlock, choice_blocks, replace_module

MODES = ("soft", "sampled")


class MixedChoice(ChoiceBlock):
    """A choice position inside a super-net: candidates plus their logits phi."""

    def __init__(self, label: str, candidates: Mapping[str, nn.Module], mode: str = "soft", temperature: float = 1.0):
        super().__init__(label, candidates)
        if mode not in MODES:
            raise ValueError(f"unknown super-net mode {mode!r}; expected one of {MODES}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.mode = mode
        self.temperature = float(temperature)
        # Zeros: every candidate starts equally likely (alpha uniform).
        self.logits = nn.Parameter(torch.zeros(len(self.candidates)))
        self.noise: torch.Tensor | None = None  # Gumbel noise for the next sampled forward

    def alpha(self) -> torch.Tensor:
        """softmax(phi / T), differentiable in phi."""
        return torch.softmax(self.logits / self.temperature, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "soft":
            alpha = self.alpha()
            out = None
            for a, module in zip(alpha, self.candidates.values()):
                term = a * module(x)
                out = term if out is None else out + term
            return out
        if not self.training:
            k = int(torch.argmax(self.logits))
            return list(self.candidates.values())[k](x)
        k, gate = self._sample()
        return gate * list(self.candidates.values())[k](x)

    def _sample(self) -> tuple[int, torch.Tensor]:
        """(index, straight-through gate): gate == 1 in value, d gate / d phi from the soft sample."""
        noise = self.noise
        if noise is None:  # library use without draw_gumbel: fall back on the global RNG
            noise = _gumbel(torch.rand(len(self.candidates)))
        soft = torch.softmax(self.logits / self.temperature + noise.to(self.logits.device), dim=0)
        k = int(torch.argmax(soft))
        return k, (1.0 - soft[k]).detach() + soft[k]

    def extra_repr(self) -> str:
        return f"label={self.label!r}, candidates={list(self.names)}, mode={self.mode!r}, temperature={self.temperature}"


def to_supernet(net: nn.Module, mode: str = "soft", temperature: float = 1.0) -> nn.Module:
    """Replace every `ChoiceBlock` of `net` in place by a `MixedChoice`; returns `net`.

    The candidate modules are reused, not copied, so their state_dict keys do not
    change. Already-mixed positions are re-configured (mode, temperature), keeping phi.
    """
    for label, (path, block) in choice_blocks(net).items():
        if isinstance(block, MixedChoice):
            set_mode(block, mode, temperature)
            continue
        mixed = MixedChoice(label, block.candidates, mode=mode, temperature=temperature)
        device = next((p.device for p in block.parameters()), None)
        if device is not None:
            mixed.logits.data = mixed.logits.data.to(device)
        replace_module(net, path, mixed)
    return net


def set_mode(block: MixedChoice, mode: str, temperature: float) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown super-net mode {mode!r}; expected one of {MODES}")
    block.mode, block.temperature = mode, float(temperature)


def mixed_choices(net: nn.Module) -> dict[str, MixedChoice]:
    """label -> `MixedChoice`, in position order (raises if `net` is not a super-net)."""
    blocks = {label: block for label, (_, block) in choice_blocks(net).items()}
    plain = [label for label, block in blocks.items() if not isinstance(block, MixedChoice)]
    if plain:
        raise ValueError(f"positions {plain[:3]} are not mixed; call to_supernet first")
    return blocks


def arch_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The logits phi of every position, in position order (the architecture optimiser's group)."""
    return [block.logits for block in mixed_choices(net).values()]


def weight_parameters(net: nn.Module) -> list[nn.Parameter]:
    """Every parameter except the logits (the weight optimiser's group)."""
    arch = {id(p) for p in arch_parameters(net)}
    return [p for p in net.parameters() if id(p) not in arch]


def alpha_matrix(net: nn.Module, labels: list[str] | None = None) -> torch.Tensor:
    """alpha per (position, candidate), shape (P, K_max), zero-padded; differentiable in phi.

    Rows follow `labels` (default: position order), columns each position's candidate order.
    """
    blocks = mixed_choices(net)
    labels = labels if labels is not None else list(blocks)
    k = max(len(blocks[label].candidates) for label in labels)
    rows = [nn.functional.pad(blocks[label].alpha(), (0, k - len(blocks[label].candidates))) for label in labels]
    return torch.stack(rows)


def alphas(net: nn.Module) -> dict[str, dict[str, float]]:
    """label -> candidate -> alpha, as plain floats (for history and reports)."""
    with torch.no_grad():
        return {
            label: {name: float(a) for name, a in zip(block.names, block.alpha().cpu())}
            for label, block in mixed_choices(net).items()
        }


def derive(net: nn.Module, space: str) -> Architecture:
    """The argmax-alpha candidate at every position (ties go to the earlier candidate)."""
    with torch.no_grad():
        return Architecture(
            space=space,
            choices={label: block.names[int(torch.argmax(block.logits))] for label, block in mixed_choices(net).items()},
        )


def draw_gumbel(net: nn.Module, *parts: object) -> None:
    """Set every position's Gumbel noise from a generator seeded by `parts` (e.g. seed, epoch, step, phase).

    Positions draw in position order from one generator, so the sample is identical
    in every process that passes the same parts.
    """
    generator = torch.Generator().manual_seed(stable_seed(*parts))
    for block in mixed_choices(net).values():
        block.noise = _gumbel(torch.rand(len(block.candidates), generator=generator, dtype=torch.float64).float())


def _gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel samples from uniforms in [0, 1) (clamped away from 0 and 1)."""
    u = u.clamp(1e-10, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the sha256 of the parts' str(): equal in every process (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
