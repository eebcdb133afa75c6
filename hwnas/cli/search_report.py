"""`hwnas search` and `hwnas sweep`: what they show -- the progress bars (`Bars`: the table's
measurements, then the steps with the loss terms) and the report of a search (`report_search`,
`FILES`: a run folder's files) and of a sweep's front (`report_front`)."""

from __future__ import annotations

import json

import typer


class Bars:
    """One progress bar at a time (`hwnas.cli.progress`): over the latency-table measurements, then over the
    steps with the loss terms; each opens at its first update (the totals come from the engine)."""

    def __init__(self, enabled: bool):
        from hwnas.cli.progress import shown

        self.enabled = shown(enabled)
        self.kind = self.bar = self.context = self.description = None

    def __enter__(self) -> "Bars":
        return self

    def _show(self, kind: str, total: int | None, **kwargs):
        from hwnas.cli.progress import bar

        if self.kind != kind:
            self.close()
            self.context = bar(total, **kwargs)
            self.bar, self.kind = self.context.__enter__(), kind
        return self.bar

    def on_table(self, m, total: int) -> None:
        if self.enabled:
            shown = self._show("table", total, unit="unit", desc="measuring")
            shown.set_postfix_str(f"{m.name}@{'x'.join(map(str, m.input_shape))} {m.median_ms:.3f} ms", refresh=False)
            shown.update(1)

    def on_run(self, point, index: int, count: int) -> None:
        self.description = f"{point.label} ({index + 1}/{count})"
        if self.kind == "steps":
            self.bar.reset()
            self.bar.set_description(self.description)

    def on_step(self, log) -> None:
        if not self.enabled:
            return
        shown = self._show("steps", log.total_steps, unit="step", desc=self.description)
        shown.n = log.global_step + 1
        post = {"ep": log.epoch, "loss": f"{log.train_loss:.4g}"}
        if log.total is not None:
            post.update(task=f"{log.task:.3f}", lat=f"{log.latency:.3f}", ent=f"{log.entropy:.3f}", ms=f"{log.expected_ms:.1f}")
        else:
            post["phase"] = "warm-up"
        shown.set_postfix(post, refresh=False)
        shown.refresh()

    def close(self, *exc) -> None:
        if self.context is not None:
            self.context.__exit__(*(exc or (None, None, None)))
        self.kind = self.bar = self.context = None

    def __exit__(self, *exc) -> None:
        self.close(*exc)


FILES = ("config.yaml", "lut.csv", "checkpoints/last.pt", "alpha_history.csv", "alpha.png", "entropy.png",
         "metrics.csv", "steps.csv", "arch.json", "summary.json")


def report_search(result, as_json: bool) -> None:
    s, run = result.summary, result.run_dir
    files = {name: str(run / name) for name in FILES}
    files.update({f"lut-{name}.csv": str(run / f"lut-{name}.csv") for name in list(s.get("devices") or {})[1:]})
    if as_json:
        typer.echo(json.dumps({"run_dir": str(run), "files": files, **s}, indent=2))
        return
    target = "" if s["target_ms"] is None else f", target {s['target_ms']:g} ms"
    typer.echo(f"\nsearch of {s['space']} ({s['preset'] or 'custom'}) for task {s['task']}, {s['mode']} mode, "
               f"mu={s['latency_weight']:g}{target}: "
               f"{s['epochs_done']} epochs, {s['seconds']:.1f} s in this session")
    typer.echo(f"  {'position':<10} {'candidate':<14} alpha")
    for label, choice in s["choices"].items():
        typer.echo(f"  {label:<10} {choice['candidate']:<14} {choice['alpha']:.3f}")
    t = s["latency_table"]
    typer.echo(f"predicted latency {s['predicted_ms']:.2f} ms vs {s['base']} {s['base_ms']:.2f} ms "
               f"({s['speedup']:.2f}x faster) on {t['device']} ({t['backend']}, {t.get('precision', 'fp32')}, {t['image_size']}px)")
    devices = s.get("devices") or {}
    if len(devices) > 1:
        typer.echo(f"per device ({s['combine']} of the weighted terms):")
        for name, d in devices.items():
            target = "" if d["target_ms"] is None else f", target {d['target_ms']:g} ms"
            typer.echo(f"  {name:<12} {d['predicted_ms']:9.2f} ms = {d['ratio']:.3f} x its base {d['base_ms']:.2f} ms "
                       f"on {d['device']} ({d['backend']}, {d['precision']}; weight {d['weight']:g}{target})")
    if s.get("val"):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in s["val"].items())
        typer.echo(f"derived network: {s['params'] / 1e3:.1f}k params; validation {scores} (BatchNorm recalibrated)")
    if s.get("alpha_entropy") is not None:
        typer.echo(f"mean normalised entropy of alpha: {s['alpha_entropy']:.3f} (0 decisive, 1 uniform)")
    if s.get("commitment"):
        typer.echo(s["commitment"]["verdict"])
    from hwnas.nas.collapse import summary_line  # here: the listing commands import this module without torch

    if (line := summary_line(s)) is not None:
        typer.echo(line)
    for note in s.get("target_notes") or []:
        typer.echo(note)
    if swaps := s.get("target_swaps"):
        listed = ", ".join(f"{w['position']} {w['from']}->{w['to']}" for w in swaps)
        typer.echo(f"held the target: {len(swaps)} position(s) moved off the argmax to faster candidates, least alpha "
                   f"per ms first ({listed}; --no-hold-target keeps the argmax network)")
    typer.echo(f"run directory {run}:")
    for name, path in files.items():
        typer.echo(f"  {name:<20} {path}")


def report_front(front) -> None:
    label = front.metric.removeprefix("val_")
    typer.echo(f"\n{'network':<28}  {'kind':<9}  {'measured ms':>11}  {'val ' + label:>8}  pareto  run")
    for r in sorted(front.rows, key=lambda r: r["measured_ms"]):
        score = "-" if r.get(front.metric) is None else f"{r[front.metric]:.2f}"
        typer.echo(f"{r['name']:<28}  {r['kind']:<9}  {r['measured_ms']:>11.2f}  {score:>8}  {'*' if r['pareto'] else ' ':^6}  {r['run']}")
    for note in front.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"front table: {front.table}\nfront plot:  {front.plot}")
