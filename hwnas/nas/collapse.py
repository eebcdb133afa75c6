"""Collapse, said plainly: a search whose derived network is one candidate everywhere.

The method's known failure (the paper's "performance collapse": every weight on the
simplest alternative because the latency penalty dominates) yields a network a user
could have had without searching. This module names it: the uniform candidate, whether
it is also the cheapest the table offers at every position, why (the target or mu set
against the cheapest network's predicted latency) and what to change. `search` warns
before it starts when a target leaves no room above the cheapest network.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hwnas.nas.objective import DeviceLatency
from hwnas.contracts.space import Architecture, Position

TIGHT = 1.05  # a target within 5% of the cheapest network (or below it) leaves nothing to choose


def uniform_candidate(arch: Architecture) -> str | None:
    """The one candidate at every position, or None for a mix (or an empty architecture)."""
    names = set(arch.choices.values())
    return names.pop() if len(names) == 1 else None


def cheapest_everywhere(arch: Architecture, positions: Sequence[Position], device: DeviceLatency) -> bool:
    """Whether every position chose its cheapest candidate under `device`'s table."""
    model = device.model
    for i, pos in enumerate(positions):
        costs = {name: float(model.ms[i, k]) for k, name in enumerate(pos.candidates)}
        if costs[arch.choices[pos.label]] > min(costs.values()):
            return False
    return True


def target_warning(device: DeviceLatency) -> str | None:
    """A sentence when `device`'s target leaves (almost) nothing above the cheapest network, else None."""
    t, cheapest, base = device.target_ms, device.model.cheapest_ms, device.model.base_ms
    if t is None or t > TIGHT * cheapest:
        return None
    where = "below" if t < cheapest else f"within {100 * (TIGHT - 1):.0f}% of"
    return (f"--target-ms {t:g} is {where} the cheapest network the table can make ({cheapest:.4g} ms; the base "
            f"network {base:.4g} ms): the search can only collapse onto it; give a target between the two.")


def collapse_summary(arch: Architecture, positions: Sequence[Position], device: DeviceLatency,
                     latency_weight: float) -> dict[str, Any]:
    """summary.json's `uniform` (the candidate or None) and `collapse` (None, or why and what to change)."""
    name = uniform_candidate(arch)
    if name is None or not cheapest_everywhere(arch, positions, device):
        return {"uniform": name, "collapse": None}
    m = device.model
    ratio = m.cheapest_ms / m.base_ms
    if device.target_ms is not None:
        why = (f"the target {device.target_ms:g} ms is {device.target_ms / m.cheapest_ms:.2f}x the cheapest network's "
               f"predicted {m.cheapest_ms:.4g} ms, so little but the cheapest network meets it")
        fix = f"raise --target-ms towards the base network's {m.base_ms:.4g} ms"
    else:
        why = (f"mu={latency_weight:g} outweighs the task loss: the cheapest network is {ratio:.2f}x the base "
               f"network's {m.base_ms:.4g} ms")
        fix = f"lower --latency-weight (e.g. {latency_weight / 10:g}) or give --target-ms between {m.cheapest_ms:.4g} and {m.base_ms:.4g}"
    return {"uniform": name, "collapse": {
        "cheapest_ms": m.cheapest_ms, "base_ms": m.base_ms,
        "text": f"the search collapsed: every position is {name}, the cheapest candidate under the table; {why}. "
                f"This is the uniform all-{name} network, not a search result; {fix}."}}


def summary_line(summary: Mapping[str, Any]) -> str | None:
    """What the printed summary says about a uniform result, or None for a mix."""
    if summary.get("collapse"):
        return summary["collapse"]["text"]
    if summary.get("uniform"):
        return f"the derived network is uniform: all-{summary['uniform']} (one candidate at every position)."
    return None
