"""What a search reports: summary.json, arch.json, the alpha history, metrics.csv and the plots.

`write_outputs(search)` rewrites every derived file of a run from the loop's in-memory
state (`hwnas.nas.search_loop.Search`), so a resumed run never appends; `summary` is
summary.json's contents (choices, predicted latency against the base network,
commitment, collapse, per-device latencies, parameters of the derived network).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from torch import nn

from hwnas.nas.collapse import collapse_summary
from hwnas.nas.commitment import commitment
from hwnas.tables.cost import count_params
from hwnas.nas.history import plot_alpha, plot_entropy, write_alpha_history
from hwnas.runs.io import atomic_write_text
from hwnas.contracts.latency import predict_ms
from hwnas.runs.rows import write_rows
from hwnas.contracts.space import Architecture
from hwnas.nas.supernet import alphas, mixed_choices
from hwnas.nas.target_gap import target_notes

if TYPE_CHECKING:
    from hwnas.nas.search_loop import Search


def summary(search: Search, arch: Architecture, scores: dict[str, float] | None,
            held: list | None = None) -> dict[str, Any]:
    c, p, lat = search.config, search.progress, search.objective.latency
    chosen = alphas(search.net)
    firsts = {pos.candidates[0] for pos in search.positions}
    predicted = predict_ms(search.table, search.positions, search.fixed, arch)
    devices = device_summary(search, arch)
    return {
        "space": search.space.name,
        "preset": search.space.preset,
        "task": search.config.task.name,
        "primary_metric": search.task.primary_metric,
        "mode": c.mode,
        "latency_weight": c.latency_weight,
        "target_ms": c.target_ms,
        "entropy_weight": c.entropy_weight,
        "entropy_growth": c.entropy_growth,
        "arch_lr": c.arch_lr,
        "lr": c.lr,
        "min_lr": c.min_lr,
        "warmup_epochs": c.warmup_epochs,
        "epochs_done": p.epoch,
        "epochs": c.epochs,
        "choices": {label: {"candidate": name, "alpha": round(chosen[label][name], 6)} for label, name in arch.choices.items()},
        "predicted_ms": predicted,
        "base": f"all-{firsts.pop()}" if len(firsts) == 1 else "base",
        "base_ms": lat.base_ms,
        "speedup": lat.base_ms / predicted if predicted > 0 else None,
        "alpha_entropy": p.history[-1]["entropy"] if p.history else None,
        "commitment": commitment(chosen, p.history[-1]["entropy"] if p.history else None, p.argmax_trail,
                                 search.arch_steps_planned()),
        "params": derived_params(search.net, arch),
        "val": scores,
        "latency_table": {"backend": search.table.meta.backend, "device": search.table.meta.device,
                          "image_size": search.table.meta.image_size,
                          "precision": search.table.meta.precision},
        "combine": c.combine,
        "devices": devices,
        "target_notes": target_notes(devices, c.latency_weight),
        # the argmax positions changed to hold the target (hwnas.nas.target_hold); empty: the argmax network
        "target_swaps": [swap.as_dict() for swap in held or []],
        **collapse_summary(arch, search.positions, search.objective.devices[0], c.latency_weight),
    }



def device_summary(search: Search, arch: Architecture) -> dict[str, dict[str, Any]]:
    """summary.json's `devices`: per device, its table and the derived network's latency."""
    out = {}
    for d, cost in zip(search.devices, search.objective.devices):
        predicted = predict_ms(d.table, search.positions, search.fixed, arch)
        out[d.name] = {**d.describe(), "weight": d.weight, "target_ms": d.target_ms, "predicted_ms": predicted,
                       "base_ms": cost.model.base_ms, "ratio": predicted / cost.model.base_ms}
    return out



def write_outputs(search: Search, plots: bool = True) -> dict[str, Any] | None:
    """Rewrite every derived file from the in-memory state (no appends: resume-safe).

    Plots take about a second, so the loop redraws them only at the end or on a stop.
    """
    if not search.writer:
        return None
    p, folder = search.progress, search.folder
    arch, held = search.derived_arch()
    arch.save(folder.arch)
    write_alpha_history(folder.alpha_history, p.history)
    write_rows(folder.metrics, p.metrics)
    if plots:
        title = f"{search.space.name} ({search.space.preset or 'custom'}), {search.config.mode}, mu={search.config.latency_weight}"
        plot_alpha(folder.alpha_png, p.history, title=title)
        plot_entropy(folder.entropy_png, p.history)
    scores = {k.removeprefix("val_"): v for k, v in p.metrics[-1].items() if k.startswith("val_")} if p.metrics else None
    result = summary(search, arch, scores, held)
    atomic_write_text(folder.summary, json.dumps(result, indent=2) + "\n")
    return result


def derived_params(net: nn.Module, arch: Architecture) -> int:
    """Parameters of the derived network: the super-net's weights less unchosen candidates (no copy made)."""
    blocks = mixed_choices(net)
    unchosen = sum(count_params(module) for label, block in blocks.items()
                   for name, module in block.candidates.items() if name != arch.choices[label])
    return count_params(net) - unchosen - sum(block.logits.numel() for block in blocks.values())
