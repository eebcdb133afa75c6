"""The GPU path, end to end on one GPU in under 5 minutes: does `--accelerator cuda` work?

Runs, with the `hwnas` command of this checkout, on the embedded sample images (no data
set needed) and the analytic MACs table (no latency hardware needed):

1. a tiny-preset search (the quick start, on the GPU);
2. a paper-preset sampled search of SEARCH_STEPS steps, interrupted with SIGINT halfway
   and continued with `--resume`;
3. fine-tuning of its result (`hwnas train --init-from`), `hwnas eval` on a few sample
   images and `hwnas export` (checked against PyTorch by ONNX Runtime);
4. one paper-preset training step of all-`naf` in float32 against the CUDA settings
   hwnas uses (bf16 autocast, channels-last, cudnn.benchmark), steps/s side by side.

Every stage's wall-clock time and key numbers go to `results/gpu_check.json` (and to
`$OUT/gpu_check.json` when `OUT` is set, as on a lent device machine); a failing stage
stops the check with its command and the end of its output.

The device machine has its own Python (3.12) and torch, and lacks pydantic: carry it as
wheels (see benchmarks/README.md, "GPU check"), then

    python benchmarks/gpu_check.py            # --accelerator cpu --quick: a CPU dry run of the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SEARCH_STEPS = 300


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accelerator", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: check the script itself (e.g. on a CPU)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    return p.parse_args(argv)


class Check:
    def __init__(self, work: Path, accelerator: str):
        self.work, self.accelerator = work, accelerator
        self.report: dict = {"stages": {}, "accelerator": accelerator}

    def hwnas(self, *args: object, interrupt_after: float | None = None) -> dict | None:
        """Run `hwnas ARGS --json`; the JSON it prints, or None when interrupted as asked."""
        argv = [sys.executable, "-m", "hwnas", *map(str, args)]
        proc = subprocess.Popen(argv, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=1800)
        if interrupt_after is not None and proc.returncode == 130:
            return None
        if proc.returncode != 0:
            raise SystemExit(f"error: `hwnas {' '.join(map(str, args))}` failed (exit {proc.returncode}):\n{err[-2000:]}")
        return json.loads(out) if out.strip().startswith(("{", "[")) else None

    def stage(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        facts = fn() or {}
        self.report["stages"][name] = {"seconds": round(time.perf_counter() - t0, 2), **facts}
        print(f"{name}: {self.report['stages'][name]}", flush=True)


def sample_images(folder: Path, count: int) -> Path:
    """A few of scikit-image's embedded colour photographs as PNG files (no download)."""
    import numpy as np
    from skimage import data, io

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee", "rocket")[:count]:
        io.imsave(folder / f"{name}.png", np.asarray(getattr(data, name)())[..., :3], check_contrast=False)
    return folder


def step_rate(accelerator: str, quick: bool) -> dict:
    """Paper-preset all-naf training steps/s: float32 eager vs hwnas's compute settings."""
    import torch

    from hwnas.runs.compute import compute_for
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture, freeze

    space = get_space("nafnet-unet").from_options("tiny" if quick else "paper")
    labels = {p.label: p.candidates for p in space.positions(256)}
    batch, crop, steps = (2, 32, 3) if quick else (16, 128, 20)
    out = {}
    for name, compute in (("float32", None), ("hwnas", compute_for(accelerator))):
        torch.manual_seed(0)
        net = freeze(space, Architecture.uniform(space.name, labels, "naf")).train()
        device = torch.device(accelerator)
        net = compute.module(net) if compute else net.to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        x = torch.rand(batch, 3, crop, crop, device=device)
        x = compute.tensor(x) if compute else x

        def step():
            opt.zero_grad(set_to_none=True)
            if compute:
                with compute.forward():
                    y = net(x)
            else:
                y = net(x)
            torch.nn.functional.mse_loss(y.float(), x.float()).backward()
            opt.step()

        for _ in range(3):
            step()
        if accelerator == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if accelerator == "cuda":
            torch.cuda.synchronize()
        out[name] = round(steps / (time.perf_counter() - t0), 3)
    out["speedup"] = round(out["hwnas"] / out["float32"], 3)
    out.update(batch=batch, crop=crop)
    return out


def main() -> None:
    args = parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hwnas-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    c = Check(work, args.accelerator)
    acc = ["--accelerator", args.accelerator]
    steps = 20 if args.quick else SEARCH_STEPS
    lut = "tiny.csv" if args.quick else "paper.csv"
    sizes = [] if args.quick else ["--crop", 128, "--batch-size", 16]
    try:
        import torch

        c.report["torch"] = torch.__version__
        c.report["device"] = torch.cuda.get_device_name() if args.accelerator == "cuda" else "cpu"

        def tables():
            for preset in ("tiny", "paper"):
                c.hwnas("build-lut", "--backend", "macs", "--preset", preset, "--image-size", 256, "--out", f"{preset}.csv")

        c.stage("tables", tables)
        short = ["--epochs", 2, "--steps-per-epoch", 5] if args.quick else []  # else the quick start's defaults
        c.stage("tiny_search", lambda: _search_facts(c.hwnas("search", "--lut", "tiny.csv", *short, *acc, "--out", "tiny", "--json")))
        flags = ["search", "--lut", lut, *sizes, "--mode", "sampled", "--epochs", 5, "--steps-per-epoch", steps // 5,
                 *acc, "--out", "paper"]

        def interrupted_search():
            first = c.hwnas(*flags, "--json", interrupt_after=10 if args.quick else 45)
            resumed = c.hwnas("search", "--out", "paper", "--resume", "--json")
            return {"interrupted_and_resumed": first is None, **_search_facts(resumed)}

        c.stage("paper_search_with_resume", interrupted_search)
        images = sample_images(work / "images", 2 if args.quick else 4)
        c.stage("train", lambda: _train_facts(c.hwnas("train", "--init-from", "paper", *acc, "--epochs", 2,
                                                      "--steps-per-epoch", 10 if args.quick else 100, "--out", "ft", "--json")))
        c.stage("eval", lambda: {"scores": c.hwnas("eval", "--model", "ft/model.pt", "--data", images, "--sigma", 25,
                                                    *acc, "--out", "eval.csv", "--json")["summary"]})
        c.stage("export", lambda: {k: v for k, v in (c.hwnas("export", "--model", "ft/model.pt", "--out", "ft.onnx", "--json") or {}).items()
                                   if k in ("max_abs_error", "params", "gmacs")})
        c.stage("step_rate", lambda: step_rate(args.accelerator, args.quick))
        c.report["status"] = "passed"
    except SystemExit as err:
        c.report["status"] = f"failed: {err}"
        raise
    finally:
        _write(c.report, args.quick)


def _search_facts(s: dict | None) -> dict:
    s = s or {}
    return {k: s.get(k) for k in ("epochs_done", "alpha_entropy", "speedup")} | {"committed": (s.get("commitment") or {}).get("committed")}


def _train_facts(t: dict | None) -> dict:
    t = t or {}
    return {"steps": t.get("steps"), "val": t.get("metrics")}


def _write(report: dict, quick: bool) -> None:
    text = json.dumps(report, indent=2, default=str) + "\n"
    if not quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "gpu_check.json").write_text(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
