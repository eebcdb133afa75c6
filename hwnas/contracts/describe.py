"""A space's positions, shapes and per-candidate cost, as plain data (for `hwnas describe`)."""

from __future__ import annotations

from hwnas.tables.cost import count_macs, count_params
from hwnas.contracts.space import SearchSpace


def describe_space(space: SearchSpace, image_size: int) -> dict:
    """{"positions": [{"label", "input_shape", "candidates": [{"name", "params", "macs"}]}], "fixed": [...], "uniform": {...}}."""
    positions = space.positions(image_size)
    units = {(u.name, u.input_shape): u for u in space.candidate_units(image_size)}
    cost = {key: (count_params(u.module), count_macs(u.module, u.input_shape)) for key, u in units.items()}
    fixed = [
        {"name": u.name, "input_shape": list(u.input_shape), "params": count_params(u.module), "macs": count_macs(u.module, u.input_shape)}
        for u in space.fixed_units(image_size)
    ]
    report_positions = [
        {
            "label": p.label,
            "input_shape": list(p.input_shape),
            "candidates": [
                {"name": n, "params": cost[(n, p.input_shape)][0], "macs": cost[(n, p.input_shape)][1]} for n in p.candidates
            ],
        }
        for p in positions
    ]
    names = sorted({n for p in positions for n in p.candidates}, key=positions[0].candidates.index)
    base = {"params": sum(f["params"] for f in fixed), "macs": sum(f["macs"] for f in fixed)}
    uniform = {
        name: {
            "params": base["params"] + sum(cost[(name, p.input_shape)][0] for p in positions if name in p.candidates),
            "macs": base["macs"] + sum(cost[(name, p.input_shape)][1] for p in positions if name in p.candidates),
        }
        for name in names
    }
    return {
        "space": space.name,
        "preset": space.preset,
        "image_size": image_size,
        "positions": report_positions,
        "fixed": fixed,
        "uniform": uniform,
    }
