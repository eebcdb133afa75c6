"""`hwnas search` and `hwnas sweep` end to end on the tiny preset (macs backend: device-free)."""

import json
import logging

import matplotlib.font_manager  # noqa: F401 -- font cache found before XDG_CACHE_HOME moves (else rebuilt: seconds)
import numpy as np
import pytest

from hwnas.cli.search import FILES

FAST = ["--preset", "tiny", "--image-size", "32", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "2",
        "--epochs", "2", "--warmup-epochs", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(monkeypatch, cache):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.chdir(cache)


@pytest.fixture
def searched(env, monkeypatch, capsys, caplog, cache, cli):
    """One CLI search with the default table flow (built into the cache), --resume on a fresh folder, --json."""
    run = cache / "run"
    if not run.exists():
        with caplog.at_level(logging.INFO):
            code, out, err = cli("search", "--backend", "macs", *FAST, "--out", run, "--resume", "--json")
        assert code == 0, err
        assert "starting a fresh search" in caplog.text and "building the macs latency table" in caplog.text
        (cache / "stdout.json").write_text(out)
    return run, json.loads((cache / "stdout.json").read_text())


def test_search_writes_the_whole_run_directory_and_only_json_on_stdout(searched, cache):
    run, report = searched
    for name in FILES:
        assert (run / name).is_file(), name
    assert report["run_dir"] == str(run) and set(report["files"]) == set(FILES)
    assert report["predicted_ms"] > 0 and report["val"]["psnr"] > 0 and set(report["choices"]) == {
        "enc0.0", "enc1.0", "enc2.0", "mid.0", "dec2.0", "dec1.0", "dec0.0"}
    assert list((cache / "hwnas" / "luts").glob("nafnet-unet-tiny-*-macs-analytic-32.csv"))


def test_the_terminal_summary_names_choices_latency_and_files(searched, monkeypatch, capsys, cli):
    run, _ = searched
    code, out, err = cli("search", "--out", run, "--resume")  # already complete: report again
    assert code == 0, err
    assert "enc0.0" in out and "predicted latency" in out and "all-naf" in out and str(run / "arch.json") in out


def test_resuming_with_a_contradicting_flag_is_refused(searched, monkeypatch, capsys, cli):
    run, _ = searched
    code, out, err = cli("search", "--out", run, "--resume", "--mode", "sampled")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "--mode soft, not sampled" in err and len(err.strip().splitlines()) == 1


def test_a_fresh_search_over_a_run_is_refused(searched, monkeypatch, capsys, cli):
    run, _ = searched
    before = (run / "arch.json").read_bytes()
    code, _, err = cli("search", "--backend", "macs", *FAST, "--out", run)
    assert code == 2 and "pass --resume" in err
    assert (run / "arch.json").read_bytes() == before


def test_a_lut_flag_that_contradicts_the_table_is_refused(searched, monkeypatch, capsys, tmp_path, cli):
    run, _ = searched
    code, _, err = cli("search", "--lut", run / "lut.csv", "--preset", "paper", "--out", tmp_path / "x")
    assert code == 2 and "--preset paper contradicts the latency table" in err
    assert not (tmp_path / "x").exists()


def test_a_table_for_another_space_is_refused(searched, monkeypatch, capsys, tmp_path, cli):
    run, _ = searched
    (tmp_path / "t.csv").write_bytes((run / "lut.csv").read_bytes())
    meta = json.loads((run / "lut.meta.json").read_text())
    (tmp_path / "t.meta.json").write_text(json.dumps({**meta, "space": "other-space"}))
    code, _, err = cli("search", "--space", "nafnet-unet", "--lut", tmp_path / "t.csv", "--out", tmp_path / "x")
    assert code == 2 and "contradicts the latency table" in err and "other-space" in err
    assert not (tmp_path / "x").exists()


def test_a_data_folder_without_usable_images_is_one_line_and_writes_nothing(env, monkeypatch, capsys, tmp_path, cli):
    from skimage.io import imsave

    data = tmp_path / "data"
    data.mkdir()
    imsave(data / "small.png", np.zeros((8, 8, 3), dtype=np.uint8), check_contrast=False)
    code, out, err = cli("search", "--backend", "macs", *FAST, "--data", data, "--out", tmp_path / "run")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "smaller than the 16-pixel crop" in err
    assert not (tmp_path / "run").exists()


def test_an_invalid_value_names_its_flag(env, monkeypatch, capsys, tmp_path, cli):
    code, _, err = cli("search", "--backend", "macs", *FAST, "--mode", "greedy", "--out", tmp_path / "r")
    assert code == 2 and err.startswith("error: invalid --mode")
    assert not (tmp_path / "r").exists()


def test_sweep_writes_its_table_and_pareto_plot(searched, monkeypatch, capsys, tmp_path, cli):
    run, _ = searched
    code, out, err = cli("sweep", "--latency-weight", "0,5", "--lut", run / "lut.csv", "--crop", "16",
                           "--batch-size", "2", "--steps-per-epoch", "2", "--epochs", "2", "--warmup-epochs", "1",
                           "--arch-lr", "0.3", "--out", tmp_path / "sweep", "--json")
    assert code == 0, err
    report = json.loads(out)
    lines = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("latency_weight,target_ratio,target_ms,seed,predicted_ms,") and len(lines) == 3
    assert (tmp_path / "sweep" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert [r["latency_weight"] for r in report["runs"]] == [0.0, 5.0]
    for mu in ("mu-0", "mu-5"):
        assert (tmp_path / "sweep" / mu / "arch.json").is_file()
    free, heavy = report["runs"]
    assert heavy["predicted_ms"] <= free["predicted_ms"]
    assert any(r["pareto"] for r in report["runs"])


def test_sweep_resume_reuses_finished_runs_and_finishes_the_rest(searched, monkeypatch, capsys, tmp_path, cli):
    """`sweep --resume` once raised KeyError: names imported inside sweep() were taken for flags."""
    run, _ = searched
    args = ["sweep", "--lut", run / "lut.csv", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "1",
            "--epochs", "1", "--warmup-epochs", "0", "--out", tmp_path / "sweep", "--json"]
    code, _, err = cli(*args, "--latency-weight", "0")
    assert code == 0, err
    code, out, err = cli(*args, "--latency-weight", "0,1", "--resume")
    assert code == 0, err
    assert [r["latency_weight"] for r in json.loads(out)["runs"]] == [0.0, 1.0]


def test_sweep_resume_takes_the_weights_from_the_folders_sweep_yaml(searched, monkeypatch, capsys, tmp_path, cli):
    run, _ = searched
    code, _, err = cli("sweep", "--lut", run / "lut.csv", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "1",
                       "--epochs", "1", "--warmup-epochs", "0", "--latency-weight", "0,1", "--out", tmp_path / "sweep")
    assert code == 0, err
    code, out, err = cli("sweep", "--out", tmp_path / "sweep", "--resume", "--json")  # nothing asked again
    assert code == 0, err
    assert [r["latency_weight"] for r in json.loads(out)["runs"]] == [0.0, 1.0]


def test_sweep_resume_without_sweep_yaml_names_the_runs_it_found(monkeypatch, capsys, tmp_path, cli):
    (tmp_path / "sweep" / "mu-0.3").mkdir(parents=True)  # a sweep from before sweep.yaml was written first
    code, _, err = cli("sweep", "--out", tmp_path / "sweep", "--resume")
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'sweep'} holds no sweep.yaml (a sweep writes it as it starts) but runs for mu 0.3; "
        "pass the weights it was started with, e.g. --latency-weight 0.3.")


def test_sweep_over_latency_targets_and_seeds(searched, monkeypatch, capsys, tmp_path, cli):
    """Issue 22: targets as fractions of the base network's prediction, each searched with two seeds."""
    run, _ = searched
    args = ["--lut", run / "lut.csv", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "1", "--epochs", "1",
            "--warmup-epochs", "0", "--out", tmp_path / "sweep", "--json"]
    code, out, err = cli("sweep", "--target-ratio", "0.6,0.9", "--seeds", "0,1", *args)
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [(r["target_ratio"], r["seed"], r["latency_weight"]) for r in runs] == [
        (0.6, 0, 1.0), (0.6, 1, 1.0), (0.9, 0, 1.0), (0.9, 1, 1.0)]  # mu 1: the constraint form's default
    for r in runs:
        assert r["target_ms"] == pytest.approx(r["target_ratio"] * r["base_ms"], rel=1e-5)
        assert (tmp_path / "sweep" / r["run"] / "arch.json").is_file() and "uniform" in r
    assert runs[1]["run"] == "mu-1-target0.6x-seed1"
    assert json.loads((tmp_path / "sweep" / runs[1]["run"] / "summary.json").read_text())["target_ms"] == runs[1]["target_ms"]
    for r in runs:  # a derived network off its target says so in summary.json (one step cannot hold a target)
        summary = json.loads((tmp_path / "sweep" / r["run"] / "summary.json").read_text())
        off = abs(summary["predicted_ms"] / summary["target_ms"] - 1) > 0.05
        assert len(summary["target_notes"]) == off and all("the target" in n for n in summary["target_notes"])
    code, out, err = cli("sweep", "--out", tmp_path / "sweep", "--resume", "--json")  # the axes come from sweep.yaml
    assert code == 0, err
    assert len(json.loads(out)["runs"]) == 4


@pytest.mark.parametrize("flags, message", [
    (["--target-ratio", "0.5,0"], "--target-ratio '0.5,0' needs distinct values > 0"),
    (["--latency-weight", "0.1", "--seeds", "0,x"], "--seeds '0,x' is not a comma-separated list of whole numbers"),
])
def test_sweep_axes_are_checked_before_anything_runs(flags, message, monkeypatch, capsys, tmp_path, cli):
    code, _, err = cli("sweep", "--backend", "macs", *FAST, *flags, "--out", tmp_path / "sweep")
    assert code == 2 and message in err.strip().splitlines()[-1]
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("command", ["search", "sweep"])
def test_help_gives_an_example_and_the_cost_of_each_mode(monkeypatch, capsys, command, cli):
    code, out, _ = cli(command, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert f"hwnas {command} --" in text
    assert "soft" in text and "sampled" in text


def test_ctrl_c_writes_a_checkpoint_exits_130_and_resume_finishes(env, monkeypatch, capsys, tmp_path, cli):
    import os
    import signal

    from hwnas.nas.searching import Search

    real_step, calls = Search.step, []

    def step_then_ctrl_c(self):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self)

    monkeypatch.setattr(Search, "step", step_then_ctrl_c)
    run = tmp_path / "run"
    code, _, err = cli("search", "--backend", "macs", *FAST, "--out", run)
    assert code == 130 and "interrupted." in err
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "alpha.png").is_file()  # outputs written on the stop
    monkeypatch.setattr(Search, "step", real_step)
    code, out, err = cli("search", "--out", run, "--resume", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs_done"] == 2


def test_a_run_s_own_config_yaml_starts_the_same_search_and_flags_override_it(searched, monkeypatch, capsys, tmp_path, cli):
    run, report = searched
    code, out, err = cli("search", "--config", run / "config.yaml", "--out", tmp_path / "again", "--json")
    assert code == 0, err
    for name in ("arch.json", "steps.csv", "metrics.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (run / name).read_bytes(), name
    code, out, err = cli("search", "--config", run / "config.yaml", "--epochs", "1", "--warmup-epochs", "0",
                           "--out", tmp_path / "short", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs_done"] == 1


def test_a_config_file_with_an_unknown_setting_is_refused_in_one_line(env, monkeypatch, capsys, tmp_path, cli):
    (tmp_path / "c.yaml").write_text("epochs: 2\nepoch: 3\n")
    code, out, err = cli("search", "--config", tmp_path / "c.yaml", "--out", tmp_path / "x")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unknown setting 'epoch'" in err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("hold", [True, False])
def test_a_target_is_held_by_swapping_the_cheapest_alphas(hold, searched, monkeypatch, capsys, tmp_path, cli):
    """A target is a soft term: held loosely (here not at all, mu 0) the argmax lands above it. By default the
    derived network is brought under it, and summary.json names each swap; --no-hold-target keeps the argmax."""
    run, report = searched
    target = round(0.9 * report["base_ms"], 6)  # base = all-naf, the argmax of untrained logits; all-cbr ~0.8x
    args = ["search", "--lut", run / "lut.csv", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "1",
            "--epochs", "1", "--warmup-epochs", "1", "--latency-weight", "0", "--target-ms", target,
            "--out", tmp_path / "s", "--json"]
    code, out, err = cli(*args, *([] if hold else ["--no-hold-target"]))
    text = cli(*[a for a in args if a != "--json"], "--resume", *([] if hold else ["--no-hold-target"]))[1]
    assert ("held the target:" in text) == hold
    assert code == 0, err
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    if hold:
        assert summary["predicted_ms"] <= target and summary["target_swaps"]
        assert summary["target_notes"] == [] or "below" in summary["target_notes"][0]
        assert {s["position"] for s in summary["target_swaps"]} <= set(summary["choices"])
        arch = json.loads((tmp_path / "s" / "arch.json").read_text())
        assert {k: v["candidate"] for k, v in summary["choices"].items()} == arch["choices"]
    else:
        assert summary["predicted_ms"] > target and summary["target_swaps"] == []
        assert "above the target" in summary["target_notes"][0]
        # the finished run resumed with the target held: the same super-net, the held network derived from it
        code, out, err = cli(*args, "--resume", "--hold-target")
        assert code == 0, err
        assert json.loads((tmp_path / "s" / "summary.json").read_text())["predicted_ms"] <= target
