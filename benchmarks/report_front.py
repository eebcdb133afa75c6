"""Results-page sections of the latency-quality front (bench_front.py, issue 22).

- `front_plateau.csv`: the training budget B -- each uniform network trained for each
  length, CBSD68 sigma 25, and what doubling the length gained (the plateau test:
  at most PLATEAU_GAIN dB);
- `front_uniform.csv` (+ `front_uniform_latency.csv` when measured): the space's
  quality-latency ranking at B -- every uniform network, mean over its seeds and the
  seed spread, on CBSD68 and Kodak24 at sigma 15/25/50, with parameters, GMACs and the
  measured end-to-end latency.
"""

from __future__ import annotations

from pathlib import Path

# `report` (the page generator) loads this module and sets `report` to itself first.
if "report" not in globals():
    import report  # noqa: F401

Goal, Section, fmt, md_table = report.Goal, report.Section, report.fmt, report.md_table

PLATEAU_GAIN = 0.1  # dB: training 2B steps gains at most this much over B (bench_front.PLATEAU_GAIN)


def doubling_gains(df) -> list[tuple[str, int, float, float]]:
    """(network, B, PSNR at B, gain of 2B over B) for every length whose doubling was trained too."""
    psnr = {(r.network, int(r.steps)): float(r.cbsd68_s25_psnr) for r in df.itertuples()}
    return [(net, b, p, psnr[(net, 2 * b)] - p) for (net, b), p in sorted(psnr.items()) if (net, 2 * b) in psnr]


def plateau_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("The front's training budget: where training plateaus (front_plateau.csv)")
    pivot = df.pivot_table(index="network", columns="steps", values="cbsd68_s25_psnr", aggfunc="mean")
    rows = [[net, *(fmt(v, 2) if v == v else "-" for v in vals)] for net, vals in zip(pivot.index, pivot.values)]
    s.body += ["Uniform networks of the `small` preset trained from scratch for each length (a separate cosine "
               "schedule per length, as a user training that long gets; one torch thread), CBSD68 sigma 25 PSNR (dB):",
               "", md_table(["network", *(f"{c} steps" for c in pivot.columns)], rows), ""]
    gains = doubling_gains(df)
    if gains:
        s.body += [md_table(["network", "B (steps)", "PSNR at B", "gain of 2B over B"],
                            [[n, b, fmt(p, 2), f"{g:+.2f} dB"] for n, b, p, g in gains]), ""]
    s.goals.append(plateau_goal(gains, front_budget(results)))
    return s


def front_budget(results: Path) -> int | None:
    """The budget the front's networks were trained to (front_uniform.csv), if any."""
    import pandas as pd

    path = results / "front_uniform.csv"
    return int(pd.read_csv(path).steps.max()) if path.exists() else None


def plateau_goal(gains: list[tuple[str, int, float, float]], budget: int | None) -> Goal:
    """The plateau test at the front's budget B: every network's 2B run gains at most PLATEAU_GAIN dB."""
    goal = f"training 2B gains <= {PLATEAU_GAIN} dB over B (B = {budget or 'not chosen'})"
    at_b = [(n, g) for n, b, _, g in gains if b == budget]
    if not at_b:
        return Goal("front_plateau", goal, f"not measured: no {2 * budget if budget else '2B'}-step runs yet", None)
    net, worst = max(at_b, key=lambda x: x[1])
    return Goal("front_plateau", goal, f"largest gain {worst:+.2f} dB ({net})", worst <= PLATEAU_GAIN,
                cause="" if worst <= PLATEAU_GAIN else
                f"not a plateau at B = {budget}: the front compares networks still improving at the same budget")


SCORES = [(d, sg) for d in ("cbsd68", "kodak24") for sg in (15, 25, 50)]


def uniform_ranking(df, latency=None) -> list[list]:
    """One row per uniform network: seeds, PSNR mean (+- half the seed range) per data set and sigma,
    SSIM at CBSD68 sigma 25, params (M), GMACs, measured ms."""
    rows = []
    for net, part in df.groupby("network", sort=False):
        cells = []
        for d, sg in SCORES:
            col = f"{d}_s{sg}_psnr"
            if col not in part:
                cells.append("-")
                continue
            mean, spread = float(part[col].mean()), float(part[col].max() - part[col].min()) / 2
            cells.append(fmt(mean, 2) + (f" +-{spread:.2f}" if len(part) > 1 else ""))
        ms = "-"
        if latency is not None and net in set(latency.network):
            ms = fmt(float(latency[latency.network == net].median_ms.median()), 2)
        rows.append([net, ",".join(str(int(x)) for x in part.seed), *cells, fmt(float(part.cbsd68_s25_ssim.mean()), 4),
                     fmt(float(part.params.iloc[0]) / 1e6, 3), fmt(float(part.gmacs.iloc[0]), 3), ms])
    order = [f"{d}_s25_psnr" for d in ("cbsd68",)]
    means = {net: float(part[order[0]].mean()) for net, part in df.groupby("network")}
    return sorted(rows, key=lambda r: -means[r[0]])


def uniform_section(df, meta: dict, results: Path, out: Path) -> Section:
    import pandas as pd

    s = Section("The space's quality-latency ranking at the front's budget (front_uniform.csv)")
    lat_path = results / "front_uniform_latency.csv"
    latency = pd.read_csv(lat_path) if lat_path.exists() else None
    steps = ", ".join(str(int(x)) for x in sorted(set(df.steps)))
    s.body += [f"Every uniform network of the front's space (`small` preset) trained for B = {steps} steps (CBSD432, "
               "blind sigma 0-55, crop 64, batch 8), PSNR (dB) on CBSD68 and Kodak24 at sigma 15/25/50: the mean over "
               "the seeds, +- half their range. Parameters and GMACs at 256x256; latency: ONNX Runtime CPU end to end, "
               "interleaved rounds (`-` until measured). Sorted by CBSD68 sigma 25.", "",
               md_table(["network", "seeds", *(f"{d.upper() if d == 'cbsd68' else 'Kodak24'} s{sg}" for d, sg in SCORES),
                         "SSIM CBSD68 s25", "params (M)", "GMACs", "ms"], uniform_ranking(df, latency)), ""]
    return s


SECTIONS = {"front_plateau": plateau_section, "front_uniform": uniform_section}
