"""How far the derived network landed from the latency target it was searched for.

A target is a soft term in the loss (mu x |E/T - 1| or its hinge), not a constraint, so the
derived network can land above it (the penalty too weak to hold it) or well below it (budget
left unspent). A user who asked for 53 ms and gets 59 ms must be told, with what to change.
"""

from __future__ import annotations

from typing import Any, Mapping

TOLERANCE = 0.05  # within 5% of the target counts as on it: the table's own error is of that order


def target_notes(devices: Mapping[str, Mapping[str, Any]], latency_weight: float) -> list[str]:
    """One sentence per device whose derived network lies more than TOLERANCE from its target
    (`devices`: summary.json's `devices`, each with `predicted_ms` and `target_ms`)."""
    notes = []
    for name, d in devices.items():
        target, predicted = d.get("target_ms"), d.get("predicted_ms")
        if target is None or predicted is None or abs(predicted / target - 1) <= TOLERANCE:
            continue
        gap = 100 * (predicted / target - 1)
        where = f"{name}: " if len(devices) > 1 else ""
        if gap > 0:
            fix = (f"mu={latency_weight:g} held it loosely; raise --latency-weight (e.g. {latency_weight * 10:g}) "
                   "or search again with a lower --target-ms")
        else:
            fix = "the search left that budget unspent; a lower --latency-weight lets quality spend it"
        notes.append(f"{where}the derived network is predicted at {predicted:.4g} ms, {abs(gap):.0f}% "
                     f"{'above' if gap > 0 else 'below'} the target {target:g} ms: {fix}.")
    return notes
