"""Did a search commit? The report that keeps a near-uniform argmax from passing as a result.

A search has committed when every position's largest alpha is at least
`MIN_LARGEST_ALPHA` and the mean normalised entropy is at most `MAX_ENTROPY`. A
commitment forced late by a huge lambda on near-random alpha shows as positions
whose argmax still changed in the last quarter of the architecture steps.
"""

from __future__ import annotations

from typing import Any, Sequence

MIN_LARGEST_ALPHA = 0.8
MAX_ENTROPY = 0.1


def argmax_at(trail: Sequence[tuple[int, list[str]]], step: float) -> list[str] | None:
    """The argmax recorded last at or before `step` (the trail holds (arch step, argmax) at every change)."""
    found = None
    for at, choices in trail:
        if at > step:
            break
        found = choices
    return found


def commitment(alphas: dict[str, dict[str, float]], entropy: float | None,
               trail: Sequence[tuple[int, list[str]]], arch_steps: int) -> dict[str, Any]:
    """The commitment report of a search: thresholds, what was reached, late argmax changes and a verdict."""
    largest = {label: max(row.values()) for label, row in alphas.items()}
    weakest = min(largest, key=largest.get) if largest else None
    quarter = 0.75 * arch_steps
    before = argmax_at(trail, quarter)
    final = trail[-1][1] if trail else None
    changed = sum(a != b for a, b in zip(before, final)) if before is not None and final is not None else None
    flips = sum(1 for at, _ in trail if at > quarter)
    committed = bool(largest) and entropy is not None and min(largest.values()) >= MIN_LARGEST_ALPHA and entropy <= MAX_ENTROPY
    report = {
        "committed": committed,
        "min_largest_alpha": None if weakest is None else round(largest[weakest], 6),
        "weakest_position": weakest,
        "alpha_entropy": entropy,
        "undecided_positions": sorted(label for label, v in largest.items() if v < MIN_LARGEST_ALPHA),
        "argmax_changed_last_quarter": changed,
        "argmax_flips_last_quarter": flips,
        "thresholds": {"min_largest_alpha": MIN_LARGEST_ALPHA, "max_entropy": MAX_ENTROPY},
    }
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict[str, Any]) -> str:
    """One sentence for the summary and the terminal."""
    if report["committed"]:
        late = report["argmax_changed_last_quarter"]
        note = f"; {late} position(s) changed their argmax in the last quarter" if late else ""
        return (f"committed: every largest alpha >= {MIN_LARGEST_ALPHA} (lowest {report['min_largest_alpha']:.3f}), "
                f"entropy {report['alpha_entropy']:.3f} <= {MAX_ENTROPY}{note}")
    undecided = report["undecided_positions"]
    entropy = report["alpha_entropy"]
    return (f"NOT committed: {len(undecided)} position(s) below alpha {MIN_LARGEST_ALPHA}"
            f"{' (' + ', '.join(undecided[:4]) + (', ...' if len(undecided) > 4 else '') + ')' if undecided else ''}, "
            f"entropy {'-' if entropy is None else f'{entropy:.3f}'} (needs <= {MAX_ENTROPY}); the argmax is not a "
            "searched result yet -- run longer (--epochs, or --resume --epochs N) or raise --arch-lr")
