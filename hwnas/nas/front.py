"""The latency-quality front of a sweep: searched networks against the baselines, at equal budget (issue 22).

`hwnas sweep --baselines --budget-steps B` runs, through the sweep's executor:

1. the searches, and the baselines that need nothing from them (`hwnas.nas.baselines`):
   every uniform network per sweep seed, and per target the random mixes;
2. every derived network fine-tuned from its search run (`init_from`) for B minus the
   search's own steps, so search plus fine-tuning is B updates; and per target the
   base network and the best-scoring uniform network slower than the target, made
   narrower and shallower, and the best-scoring uniform network faster than the target
   made wider: their variants are measured here first (interleaved), and
   the one closest to the target at or below it -- the target in measured terms being
   target ratio x the base network's measured latency -- trains for B steps. With
   `narrow` (--narrow) the named candidates' uniform networks are narrowed instead, at
   every target (narrower and shallower only); nothing has to train to choose them, so they train in step 1, beside
   the searches. --uniform-candidates none trains no uniform network (for a benchmark
   that has trained them already), --narrow none no narrowed one;
3. here, on the machine being measured: every trained network end to end (ONNX
   Runtime on the CPU at the sweep's image size, all networks in the same interleaved
   rounds, median per network: `LatencyBackend.measure`), and its scores on
   `score_data` (`hwnas.api.evaluate`) besides its validation scores.

Writes, beside sweep.csv:

    <point>/finetune/                   each search's derived network, fine-tuned
    baselines/uniform-<cand>-s<seed>/   ordinary `hwnas train` run folders (one may be trained
    baselines/random-<r>x-<i>/          ahead with `hwnas train` and is then reused)
    baselines/<narrower|shallower|wider>-<cand>-<r>x/
    baselines/variants.json             the variants' measured ms the choice was made on (reused on resume)
    front.csv   one row per network: kind, name, target ratio, seed, predicted and measured ms,
                scores, params, GMACs, steps (search + fine-tuning for a searched one), training
                seconds (a searched one's: its fine-tuning's plus its search's, search_seconds.json),
                pareto (on measured latency), spec and arch (the network's space spec and architecture as
                compact JSON: `network_of` rebuilds it untrained, to time it again without weights), run
    front.png   validation score vs measured latency, each kind its own marker, the front joined
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from hwnas.nas import baselines as bl
from hwnas.contracts.config import SweepConfig
from hwnas.runs.rows import write_rows
from hwnas.contracts.space import freeze
from hwnas.nas.sweep_jobs import Local, SearchJob, Trained, TrainJob, run_job

log = logging.getLogger(__name__)

SEARCH_SECONDS = "search_seconds.json"  # each search's longest reported seconds (the sweep folder)
VARIANTS = "variants.json"  # the narrowed networks' variants as measured untrained (baselines/)
KINDS = ("searched", "uniform", "narrower", "shallower", "wider", "random")
STYLE = {"searched": ("C3", "*"), "uniform": ("C0", "s"), "narrower": ("C2", "v"), "shallower": ("C4", "^"),
         "wider": ("C5", "D"), "random": ("C7", "o")}


@dataclass(frozen=True)
class FrontResult:
    rows: list[dict[str, Any]]
    table: Path
    plot: Path
    metric: str
    notes: list[str]  # what the front lacks and why (e.g. a space without narrower networks)


@dataclass
class Plan:
    """What the front trains, with where each network sits (target ratio, seed, predicted ms)."""

    jobs: list[TrainJob]
    facts: dict[str, dict[str, Any]]


def check(config: SweepConfig, table) -> None:
    """The mistakes the front can name before anything runs: an unknown uniform candidate, a target no random mix meets."""
    search = config.search
    space = search.spec.create()
    costs = bl.Costs.of(space, search.image_size, table)
    bl.uniform_candidates(space, search.image_size, config.baselines.uniform_candidates)
    bl.narrow_candidates(space, search.image_size, config.baselines.narrow)
    _random_plan(config, Path("."), space, costs, _base_pred(space, search.image_size, costs), 0, False)


def _base_pred(space, size: int, costs: "bl.Costs") -> float:
    return costs.ms(bl.uniform(space, size, bl.candidates(space, size)[0]))


def run_front(config: SweepConfig, out: Path, table, searches: Sequence[SearchJob], ex, *, resume: bool,
              local: bool) -> tuple[list, FrontResult]:
    """(the searches' results, the front) -- see the module docstring."""
    front, search = config.baselines, config.search
    space, size = search.spec.create(), search.image_size
    costs = bl.Costs.of(space, size, table)
    seeds = list(config.seeds) or [search.seed]
    names = bl.uniform_candidates(space, size, front.uniform_candidates)
    base_pred = _base_pred(space, size, costs)
    runs = out if local else out.resolve()  # a cluster's worker may run in another folder
    first = _uniform_plan(config, runs, space, names, seeds, costs, resume)
    first = _merge(first, _random_plan(config, runs, space, costs, base_pred, seeds[0], resume))
    notes: list[str] = []
    if front.narrow:  # named: nothing to wait for, so they train beside the searches
        first = _merge(first, _narrowed_plan(config, runs, space, costs, base_pred, names, [], seeds[0], resume, notes, ""))
    done = ex.map(run_job, [*searches, *_local(first.jobs, local)])
    results, trained = done[:len(searches)], done[len(searches):]
    metric = f"val_{results[0].summary.get('primary_metric') or 'score'}"  # the task's primary metric, as sweep.csv's
    second = _finetune_plan(config, out, searches, results, resume)
    if not front.narrow:
        second = _merge(second, _narrowed_plan(config, runs, space, costs, base_pred, names, trained, seeds[0], resume,
                                                   notes, metric))
    trained += ex.map(run_job, _local(second.jobs, local))
    facts = {**first.facts, **second.facts}
    rows = measure_and_score(config, out, trained, facts)
    columns = front_columns(rows, metric)
    on_front = _pareto(rows, metric)
    for i, row in enumerate(rows):
        row["pareto"] = i in on_front
    notes += matched_by(rows, metric)
    write_rows(out / "front.csv", rows, columns)
    plot_front(out / "front.png", rows, metric)
    return results, FrontResult(rows, out / "front.csv", out / "front.png", metric, notes)


def _local(jobs: list[TrainJob], local: bool) -> list[TrainJob]:
    """Jobs that log their start when they run here (a cluster's tasks log on their node)."""
    if not local:
        return jobs
    return [replace(j, local=Local(on_start=_announce(j, i, len(jobs)))) for i, j in enumerate(jobs)]


def _announce(job: TrainJob, index: int, count: int):
    return lambda: log.info("training %s (%d/%d): %d steps into %s", job.name, index + 1, count, job.steps, job.out)


def _merge(a: Plan, b: Plan) -> Plan:
    return Plan(a.jobs + b.jobs, {**a.facts, **b.facts})


def _uniform_plan(config, out, space, names, seeds, costs, resume) -> Plan:
    search, budget = config.search, config.baselines.budget_steps
    jobs, facts = [], {}
    for cand in names:
        arch = bl.uniform(space, search.image_size, cand)
        for seed in seeds:
            name = f"uniform-{cand}-s{seed}"
            jobs.append(TrainJob(name, "uniform", bl.train_config(search, arch, budget, seed), out / "baselines" / name, resume))
            facts[name] = {"target_ratio": None, "seed": seed, "predicted_ms": costs.ms(arch), "candidate": cand}
    return Plan(jobs, facts)


def _random_plan(config, out, space, costs, base_pred, seed, resume) -> Plan:
    front, search = config.baselines, config.search
    jobs, facts = [], {}
    for ratio in config.target_ratios:
        archs = bl.random_mixes(space.name, costs, ratio * base_pred, front.random_per_target, tolerance=front.random_tolerance,
                                tries=front.random_tries, seed=round(ratio * 1e6), label=f"{ratio:g}x")
        for i, arch in enumerate(archs, 1):
            name = f"random-{ratio:g}x-{i}"
            jobs.append(TrainJob(name, "random", bl.train_config(search, arch, front.budget_steps, seed), out / "baselines" / name,
                                 resume))
            facts[name] = {"target_ratio": ratio, "seed": seed, "predicted_ms": costs.ms(arch)}
    return Plan(jobs, facts)


def _finetune_plan(config, out: Path, searches: Sequence[SearchJob], results, resume) -> Plan:
    jobs, facts = [], {}
    seconds = _search_seconds(out, {job.name: result.summary.get("seconds") or 0.0 for job, result in zip(searches, results)})
    for job, result in zip(searches, results):
        s = job.config
        steps = config.baselines.budget_steps - s.epochs * s.steps_per_epoch
        train = bl.train_config(s, result.arch, steps, s.seed, init_from=str(Path(result.run_dir).resolve()))
        jobs.append(TrainJob(job.name, "searched", train, Path(result.run_dir) / "finetune", resume))
        facts[job.name] = {"target_ratio": _ratio(config, job), "seed": s.seed, "predicted_ms": result.summary["predicted_ms"],
                           "search_steps": s.epochs * s.steps_per_epoch, "search_seconds": seconds[job.name]}
    return Plan(jobs, facts)


def _search_seconds(out: Path, now: dict[str, float]) -> dict[str, float]:
    """Each search's seconds as summary.json reports them, kept in search_seconds.json: a finished search resumed
    reports only its new session (about 0 s), so the longest report counts (one session's, for a search that was
    interrupted before the front first saw it)."""
    import json

    from hwnas.runs.io import atomic_write_text

    path = out / SEARCH_SECONDS
    seen = json.loads(path.read_text()) if path.is_file() else {}
    best = {name: max(float(seen.get(name, 0.0)), float(s)) for name, s in now.items()}
    atomic_write_text(path, json.dumps({**seen, **best}, indent=1, sort_keys=True))
    return best


def _ratio(config: SweepConfig, job: SearchJob) -> float | None:
    from hwnas.nas.sweep import points

    return next((p.ratio for p in points(config) if p.name == job.name), None)


def _narrowed_plan(config, out, space, costs, base_pred, names, trained: Sequence[Trained], seed, resume, notes,
                   metric: str) -> Plan:
    """Per target, the base network and the best uniform one slower than it (or the candidates of `narrow`, as they
    are), made narrower and shallower, and the best uniform one faster than it made wider (module docstring)."""
    search, front = config.search, config.baselines
    spec, size = search.spec, search.image_size
    named = bl.narrow_candidates(space, size, front.narrow)
    if front.narrow and not named:  # --narrow none
        return Plan([], {})
    kinds = bl.variants(spec, space)
    if kinds is None:
        notes.append(f"space {space.name} has no narrower or shallower networks (it does not implement hwnas.contracts.space.Scalable): "
                     "no narrowed baselines")
        return Plan([], {})
    if not config.target_ratios:
        notes.append("no --target-ratio: no narrowed baselines (they are made to meet a target)")
        return Plan([], {})
    all_cands = bl.candidates(space, size)
    score = _uniform_scores(trained, metric)
    wanted: dict[float, list[tuple[str, str]]] = {}  # target ratio -> (kind, candidate) to scale to it
    for ratio in config.target_ratios:
        if named:
            wanted[ratio] = [(kind, c) for kind in kinds if kind not in bl.GROWING for c in dict.fromkeys(named)]
            continue

        def slower(c: str, budget: float = ratio * base_pred) -> bool:
            return costs.ms(bl.uniform(space, size, c)) > budget

        wanted[ratio] = bl.scaled_sources(list(kinds), all_cands[0], names, slower, score)
        if not wanted[ratio]:
            notes.append(f"target {ratio:g}x: no uniform network to make narrower or wider to it")
    pairs = set(p for ps in wanted.values() for p in ps)
    variants = [(kind, cand, v) for cand in dict.fromkeys(c for ps in wanted.values() for _, c in ps)
                for kind, vs in kinds.items() if (kind, cand) in pairs for v in vs]
    if not variants:
        return Plan([], {})
    measured = _measure_untrained(config, out, space, all_cands[0], variants)
    base_ms, ms = measured[0], dict(zip(range(len(variants)), measured[1:]))
    jobs, facts, chosen = [], {}, set()
    for ratio, pairs_at in wanted.items():
        for kind, cand in pairs_at:
            options = [(i, ms[i]) for i, (k, c, _) in enumerate(variants) if k == kind and c == cand]
            i, met = bl.pick_variant(options, ratio * base_ms)
            if not met and kind in bl.GROWING:
                notes.append(f"{kind}-{cand} at {ratio:g}x: its smallest variant measured {ms[i]:.3g} ms, above the "
                             f"target's {ratio * base_ms:.3g} ms; not trained (all-{cand} itself is faster)")
                continue
            if not met:
                notes.append(f"{kind}-{cand} at {ratio:g}x: even its smallest variant measured {ms[i]:.3g} ms, above the "
                             f"target's {ratio * base_ms:.3g} ms; it is trained anyway")
            if i in chosen:
                continue
            chosen.add(i)
            vspec = variants[i][2]
            vspace = vspec.create()
            arch = bl.uniform(vspace, size, cand)
            name = f"{kind}-{cand}-{ratio:g}x"
            jobs.append(TrainJob(name, kind, bl.train_config(search, arch, front.budget_steps, seed, spec=vspec),
                                 out / "baselines" / name, resume))
            facts[name] = {"target_ratio": ratio, "seed": seed, "predicted_ms": None,
                           "variant": {k: v for k, v in vspec.options.items() if spec.options.get(k) != v}}
    return Plan(jobs, facts)


def _uniform_scores(trained: Sequence[Trained], metric: str) -> dict[str, float]:
    """Candidate -> its uniform networks' mean validation `metric` (val_<the task's primary metric>)."""
    by: dict[str, list[float]] = {}
    for t in trained:
        if t.kind == "uniform" and t.scores.get(metric) is not None:
            cand = t.name.removeprefix("uniform-").rsplit("-s", 1)[0]
            by.setdefault(cand, []).append(t.scores[metric])
    return {c: sum(v) / len(v) for c, v in by.items()}


def _backend(config: SweepConfig):
    from hwnas.tables.building import make_backend

    runs = config.baselines.measure_runs
    return make_backend("onnxruntime", {"threads": config.baselines.measure_threads, "runs": runs, "passes": min(3, runs)})


def _measure(config: SweepConfig, networks: Sequence[tuple[str, Any, Any]]) -> list[float]:
    """Median ms of each (label, space, net), all in the same interleaved rounds (`LatencyBackend.measure`)."""
    from hwnas.contracts.space import Unit

    size = config.search.image_size
    units = [Unit(label, tuple(space.example_input(size).shape), net.eval(), kind="network") for label, space, net in networks]
    log.info("measuring %d networks end to end (onnxruntime, %dpx, interleaved)", len(units), size)
    return [m.median_ms for m in _backend(config).measure(units)]


def _measure_untrained(config: SweepConfig, out: Path, space, base_cand: str, variants) -> list[float]:
    """The base network's measured ms, then each (kind, candidate, spec) variant's. Kept in baselines/variants.json:
    a resumed sweep picks the same variants (a new measurement could pick others and train them again)."""
    import json

    from hwnas.runs.io import atomic_write_text

    saved = out / "baselines" / VARIANTS
    asked = [{"kind": k, "candidate": c, "spec": v.model_dump(mode="json")} for k, c, v in variants]
    if saved.is_file():
        record = json.loads(saved.read_text())
        if record.get("base_candidate") == base_cand and record.get("variants") == asked:
            log.info("variants measured before: %s", saved)
            return record["measured_ms"]
    size = config.search.image_size
    nets = [("base", space, freeze(space, bl.uniform(space, size, base_cand)))]
    for i, (kind, cand, vspec) in enumerate(variants):
        vspace = vspec.create()
        nets.append((f"{kind}-{cand}-{i}", vspace, freeze(vspace, bl.uniform(vspace, size, cand))))
    measured = _measure(config, nets)
    saved.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, json.dumps({"base_candidate": base_cand, "variants": asked, "measured_ms": measured}, indent=1))
    return measured


def measure_and_score(config: SweepConfig, out: Path, trained: Sequence[Trained], facts) -> list[dict[str, Any]]:
    """One row per trained network: measured here, counted, scored on --score-data."""
    from hwnas.tables.cost import count_macs, count_params
    from hwnas.deploy.modelfile import load_model
    from hwnas.nas.sweep import relative

    size, front = config.search.image_size, config.baselines
    files = [load_model(t.model) for t in trained]
    built = [f.build() for f in files]
    measured = _measure(config, [(t.name, space, net) for t, (space, net) in zip(trained, built)])
    rows = []
    for t, file, (space, net), ms in zip(trained, files, built, measured):
        f = facts.get(t.name, {})
        row = {"kind": t.kind, "name": t.name, "target_ratio": f.get("target_ratio"), "seed": f.get("seed"),
               "predicted_ms": f.get("predicted_ms"), "measured_ms": ms, **t.scores, **_extra_scores(front, t),
               "params": count_params(net), "gmacs": count_macs(net, tuple(space.example_input(size).shape)) / 1e9,
               "steps": t.steps + f.get("search_steps", 0), "train_seconds": t.train_seconds + f.get("search_seconds", 0.0),
               **network_columns(file.spec, file.arch), "run": relative(t.out, out)}
        rows.append(row)
    return rows


def network_columns(spec, arch) -> dict[str, str]:
    """The `spec` and `arch` columns of a front.csv row: the network's space spec and architecture as compact JSON,
    so a network can be rebuilt (untrained) and timed again without its weights (`network_of`)."""
    import json

    def dump(model) -> str:
        return json.dumps(model.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)

    return {"spec": dump(spec), "arch": dump(arch)}


def network_of(row: dict[str, Any]):
    """(space, untrained network) of a front.csv row, from its `spec` and `arch` columns."""
    import json

    from hwnas.contracts.config import SpaceSpec
    from hwnas.contracts.space import Architecture

    spec = SpaceSpec.model_validate(json.loads(row["spec"]))
    space = spec.create()
    return space, freeze(space, Architecture.model_validate(json.loads(row["arch"])))


def _extra_scores(front, t: Trained) -> dict[str, float]:
    """`<metric>:<data set>:<label>=<value>...` (e.g. psnr:CBSD68:sigma=25:seed=0) of the network on --score-data
    (`hwnas.api.evaluate`, its CSV in the run folder: front_eval.csv)."""
    if not front.score_data:
        return {}
    from hwnas.api import evaluate
    from hwnas.runs.evaluation import metric_columns

    result = evaluate(model=str(t.model), data=list(front.score_data), task_options=dict(front.score_options),
                      out=str(t.out / "front_eval.csv"))
    scores = {}
    metrics = metric_columns(result.summary)
    for row in result.summary:
        labels = [(k, v) for k, v in row.items() if k not in metrics and k != "images"]
        name = ":".join(str(v) if i == 0 else f"{k}={v}" for i, (k, v) in enumerate(labels))  # data set first
        scores.update({f"{m}:{name}": row[m] for m in metrics if m in row})
    return scores


def front_columns(rows: list[dict[str, Any]], metric: str) -> list[str]:
    head = ["kind", "name", "target_ratio", "seed", "predicted_ms", "measured_ms"]
    tail = ["params", "gmacs", "steps", "train_seconds", "pareto", "matched_by", "spec", "arch", "run"]
    scores = [metric] + [k for r in rows for k in r if k not in head + tail and k != metric]
    return head + list(dict.fromkeys(scores)) + tail


def matched_by(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Set each row's `matched_by`: for a searched network, the best baseline (ties: the faster) that is at least as
    fast, measured, and scores at least as well -- what a user gets without searching; "" if none, or not searched.
    Returns one note per searched network so matched, as a search that did not beat not searching must say so."""
    baselines = [r for r in rows if r["kind"] != "searched" and r.get(metric) is not None]
    notes = []
    for row in rows:
        row["matched_by"] = ""
        if row["kind"] != "searched" or row.get(metric) is None:
            continue
        same = [b for b in baselines if b["measured_ms"] <= row["measured_ms"] and b[metric] >= row[metric]]
        if same:
            b = max(same, key=lambda b: (b[metric], -b["measured_ms"]))
            row["matched_by"] = b["name"]
            notes.append(f"{row['name']} ({row['measured_ms']:.2f} ms, {metric} {row[metric]:.2f}) is matched by "
                         f"the {b['kind']} baseline {b['name']} ({b['measured_ms']:.2f} ms, {b[metric]:.2f}): a user "
                         "gets that without a search")
    return notes


def _pareto(rows: list[dict[str, Any]], metric: str) -> set[int]:
    from hwnas.nas.sweep import pareto_front

    return pareto_front([(r["measured_ms"], r.get(metric)) for r in rows])


def plot_front(path: Path, rows: list[dict[str, Any]], metric: str) -> None:
    """Measured latency (x) vs `metric` (y): each kind its own colour and marker, the Pareto front joined."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hwnas.nas.sweep import _save

    fig = Figure(figsize=(7, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    scored = [r for r in rows if r.get(metric) is not None]
    for kind in KINDS:
        mine = [r for r in scored if r["kind"] == kind]
        if mine:
            colour, marker = STYLE[kind]
            ax.scatter([r["measured_ms"] for r in mine], [r[metric] for r in mine], color=colour, marker=marker,
                       s=70 if kind == "searched" else 36, zorder=3, label=kind)
    front = sorted((r for r in scored if r["pareto"]), key=lambda r: r["measured_ms"])
    ax.plot([r["measured_ms"] for r in front], [r[metric] for r in front], color="C1", zorder=2, label="Pareto front")
    for r in front:
        ax.annotate(r["name"], (r["measured_ms"], r[metric]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    _save(fig, ax, path, "measured latency (ms, onnxruntime CPU)", metric)
