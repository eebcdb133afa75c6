"""Run folders: recognised by their marker (or config), foreign folders refused, one writer at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from hwnas.runs import outdir
from hwnas.contracts.errors import HwnasError

HOLD = textwrap.dedent("""
    import sys, time
    from hwnas.runs import outdir
    with outdir.claim(sys.argv[1], "search", resume=False):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_new_or_empty_folder_takes_any_run(tmp_path):
    outdir.check(tmp_path / "new", "search", resume=False)
    (tmp_path / "empty").mkdir()
    outdir.check(tmp_path / "empty", "train", resume=False)


def test_a_claim_writes_the_marker_first_and_is_recognised(tmp_path):
    run = tmp_path / "runs" / "s1"
    with outdir.claim(run, "search", resume=False):
        assert (run / outdir.MARKER).read_text() == "search\n"
        (run / "config.yaml").write_text("anything")
    assert outdir.run_kind(run) == "search"
    with pytest.raises(HwnasError, match=f"{run} already holds a search run; pass resume=True") as err:
        outdir.check(run, "search", resume=False)
    assert err.value.cli.endswith("pass --resume to continue it or choose another --out.")  # the command line's words
    outdir.check(run, "search", resume=True)
    with pytest.raises(HwnasError, match="holds an hwnas search run, not a training run; choose another out"):
        outdir.check(run, "train", resume=True)


@pytest.mark.parametrize("files, kind", [
    ({"config.yaml": "spec: {space: nafnet-unet}\nlatency_weight: 0.1\n"}, "search"),
    ({"config.yaml": "spec: {space: nafnet-unet}\narch: {space: nafnet-unet, choices: {}}\n"}, "train"),
    ({"sweep.yaml": "search: {}\n"}, "sweep"),
    ({"mu-0/config.yaml": "spec: {}\nlatency_weight: 0\n", "mu-1/config.yaml": "spec: {}\nlatency_weight: 1\n"}, "sweep"),
    ({"config.yaml": "name: my project\n"}, None),
    ({"config.yaml": ": not yaml :\n  - ["}, None),
])
def test_runs_from_before_the_marker_are_recognised_by_their_config(tmp_path, files, kind):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert outdir.run_kind(tmp_path) == kind


def test_a_foreign_folder_is_refused_naming_what_is_there(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for name in ("a.jpg", "b.jpg", "notes.txt", "thesis.tex", "z.png"):
        (home / name).write_text("mine")
    (home / "photos").mkdir()
    for resume in (False, True):
        with pytest.raises(HwnasError) as err:
            outdir.check(home, "search", resume=resume)
        assert err.value.cli == (f"--out {home} already holds 6 file(s) that are not an hwnas run "
                                 "(a.jpg, b.jpg, notes.txt, photos/ and 2 more); choose a new or empty folder.")
        assert str(err.value).startswith(f"out={str(home)!r} already holds 6 file(s)")  # a Python caller's words
    with pytest.raises(HwnasError):
        outdir.claim(home, "train", resume=False)
    assert sorted(p.name for p in home.iterdir()) == ["a.jpg", "b.jpg", "notes.txt", "photos", "thesis.tex", "z.png"]


def test_files_are_not_folders(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HwnasError, match="is a file, not a folder"):
        outdir.check(tmp_path / "f", "search", resume=False)
    with pytest.raises(HwnasError, match="lies under the file"):
        outdir.check(tmp_path / "f" / "run", "search", resume=False)


def test_a_second_claim_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    with outdir.claim(run, "search", resume=False):
        with pytest.raises(HwnasError, match=rf"{run} is in use by another hwnas process \(pid {os.getpid()}\)"):
            outdir.claim(run, "search", resume=True)
    with outdir.claim(run, "search", resume=True):  # released at the end of the first
        pass


def test_another_process_holds_the_folder_until_it_is_killed(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(HwnasError, match=rf"in use by another hwnas process \(pid {holder.pid}\)"):
            outdir.claim(run, "search", resume=True)
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        holder.wait()
    assert (run / outdir.LOCK).exists()  # a stale lock file...
    with outdir.claim(run, "search", resume=True):  # ...blocks nothing
        pass


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path):
    run = tmp_path / "new" / "run"
    with pytest.raises(HwnasError, match="bad data"):
        with outdir.claim(run, "train", resume=False):
            raise HwnasError("bad data")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(HwnasError):
        with outdir.claim(existing, "train", resume=False):
            raise HwnasError("bad data")
    assert existing.is_dir() and list(existing.iterdir()) == []
    with pytest.raises(RuntimeError):
        with outdir.claim(run, "train", resume=False):
            (run / "metrics.csv").write_text("epoch\n")
            raise RuntimeError("crash after a write")
    assert (run / "metrics.csv").is_file() and outdir.run_kind(run) == "train"  # what a run wrote stays


def test_an_output_that_is_an_input_is_refused(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    os.symlink(model, tmp_path / "link.pt")
    for same in (model, tmp_path / "link.pt", tmp_path / "." / "m.pt"):
        with pytest.raises(HwnasError, match="is the model; writing it would destroy the input"):
            outdir.check_distinct(same, "--out", {"model": model})
    outdir.check_distinct(tmp_path / "m.onnx", "--out", {"model": model, "nothing": None})
    data = tmp_path / "data"
    data.mkdir()
    for inside in (data, data / "shown", data / "a" / ".." / "b"):
        with pytest.raises(HwnasError, match="lies in the data folder"):
            outdir.check_outside(inside, "--save-images", {"data folder": data})
    outdir.check_outside(tmp_path / "shown", "--save-images", {"data folder": data})


def test_a_command_on_a_folder_in_use_is_one_line(tmp_path, monkeypatch, capsys):
    from hwnas.cli import main

    run = tmp_path / "run"
    args = ["hwnas", "train", "--preset", "tiny", "--uniform", "cbr", "--crop", "16", "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "1", "--out", str(run)]
    monkeypatch.setattr(sys, "argv", args)
    with outdir.claim(run, "train", resume=False):  # another run writing there (here: this process)
        with pytest.raises(SystemExit) as done:
            main()
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.strip().splitlines()[-1] == (f"error: {run} is in use by another hwnas process (pid {os.getpid()}); "
                                            "wait for it to finish or choose another --out.")


def test_a_bookkeeping_file_being_written_is_not_a_foreign_file(tmp_path):
    """Rank 1 of a data-parallel run checks the folder while rank 0 writes its pid (`.hwnas-pid.<random>.tmp`)."""
    from hwnas.runs import outdir

    run = tmp_path / "run"
    run.mkdir()
    (run / f".{outdir.HOLDER}.k2j3.tmp").write_text("123\n")
    outdir.check(run, "search", resume=False)  # an empty folder but for the pid in flight
    (run / ".notes.k2j3.tmp").write_text("x")
    with pytest.raises(HwnasError, match="not an hwnas run"):
        outdir.check(run, "search", resume=False)
