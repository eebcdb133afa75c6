"""The architecture's history: alpha per position per epoch, as CSV and plots.

The history lives in the search checkpoint (a list of per-epoch records) and the
files are rewritten from it, so a resumed run never duplicates rows.

A record is {"epoch": int, "alphas": {label: {candidate: alpha}}, "entropy": float}.

- `alpha_history.csv`: long format, one row per (epoch, position, candidate); alphas
  written with 6 decimals, no timings -- equal runs give equal bytes.
- `alpha.png`: in the spirit of Fig. 3 of the paper: one panel per position, alpha
  of each candidate over the epochs.
- `entropy.png`: the mean normalised entropy over the epochs.

Plots use matplotlib's Agg canvas directly (no pyplot, no global backend switch).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

from hwnas.runs.io import atomic_write_bytes, atomic_write_text
from hwnas.runs.rows import format_rows

COLUMNS = ["epoch", "position", "candidate", "alpha"]


def alpha_csv(history: Sequence[dict[str, Any]]) -> str:
    rows = [{"epoch": int(record["epoch"]), "position": label, "candidate": name, "alpha": f"{float(alpha):.6f}"}
            for record in history for label, row in record["alphas"].items() for name, alpha in row.items()]
    return format_rows(rows, COLUMNS)


def write_alpha_history(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    atomic_write_text(Path(path), alpha_csv(history))


def read_alpha_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of an `alpha_history.csv` (entropy not included)."""
    records: dict[int, dict[str, dict[str, float]]] = {}
    for line in Path(path).read_text().splitlines()[1:]:
        epoch, label, name, alpha = line.split(",")
        records.setdefault(int(epoch), {}).setdefault(label, {})[name] = float(alpha)
    return [{"epoch": e, "alphas": a} for e, a in sorted(records.items())]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def plot_alpha(path: str | Path, history: Sequence[dict[str, Any]], title: str = "") -> None:
    """One panel per position: alpha of each candidate over the epochs (shared legend)."""
    if not history:
        return
    labels = list(history[-1]["alphas"])
    cols = min(6, len(labels))
    rows = math.ceil(len(labels) / cols)
    from matplotlib.ticker import MaxNLocator

    fig = _figure(2.4 * cols + 1.6, 1.9 * rows + 0.6)
    epochs = [r["epoch"] for r in history]
    names: list[str] = []
    for i, label in enumerate(labels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for name in history[-1]["alphas"][label]:
            if name not in names:
                names.append(name)
            color = f"C{names.index(name) % 10}"
            ys = [r["alphas"].get(label, {}).get(name, float("nan")) for r in history]
            ax.plot(epochs, ys, marker="o" if len(epochs) < 15 else None, markersize=3, color=color, label=name)
        ax.set_title(label, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles = [fig.axes[0].lines[k] for k in range(len(fig.axes[0].lines))]
    fig.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8, ncol=len(handles))
    fig.suptitle(title or "alpha per candidate over epochs", fontsize=10, x=0.02, ha="left")
    fig.supxlabel("epoch", fontsize=8)
    # Fixed margins: tight_layout costs more than the drawing itself.
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1 if rows < 3 else 0.05, top=1 - 0.5 / fig.get_figheight(),
                        wspace=0.3, hspace=0.5)
    _save(fig, Path(path))


def plot_entropy(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    """Mean normalised entropy of alpha per epoch (1 = uniform, 0 = decisive)."""
    if not history:
        return
    fig = _figure(5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.ticker import MaxNLocator

    ax.plot([r["epoch"] for r in history], [r["entropy"] for r in history], marker="o", markersize=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean H(alpha) / log K")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, Path(path))
