"""Executors: the local loop, and Ray against a real local Ray instance (started once for the module)."""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hwnas.contracts.errors import HwnasError, RuntimeFailure
from hwnas.runs.executors import LocalExecutor, RayExecutor, check_answers, executor


@dataclass(frozen=True)
class Item:
    folder: str
    n: int
    fail: str = ""  # "value": raise ValueError; "disk": raise RuntimeFailure

    @property
    def name(self) -> str:
        return f"item-{self.n}"


def write_one(item: Item) -> tuple[int, dict[str, float]]:
    """A run: writes its own file, returns its number and the resources Ray gave it (none outside Ray)."""
    if item.fail == "value":
        raise ValueError(f"item {item.n} cannot be done")
    if item.fail == "disk":
        raise RuntimeFailure("no space left on device")
    Path(item.folder, f"{item.n}.txt").write_text(str(item.n * item.n))
    try:
        import ray

        given = dict(ray.get_runtime_context().get_assigned_resources()) if ray.is_initialized() else {}
    except ImportError:
        given = {}
    return item.n, given


def niceness(_) -> int:
    return os.nice(0)


def test_local_executor_is_the_default_and_keeps_order(tmp_path):
    ex = executor()
    assert isinstance(ex, LocalExecutor)
    assert [n for n, _ in ex.map(write_one, [Item(str(tmp_path), n) for n in (3, 1, 2)])] == [3, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.txt", "2.txt", "3.txt"]


def test_an_unknown_executor_names_the_choices():
    with pytest.raises(ValueError, match="choose one of local, ray"):
        executor("dask")


def test_without_ray_the_ray_executor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(HwnasError, match=r"^the ray executor needs Ray, which is not installed: "
                                         r"pip install 'hwnas\[ray\]'$"):
        executor("ray")


def test_a_ray_address_where_nothing_listens_is_refused_at_once():
    """Ray itself retries an unreachable RAY_ADDRESS for minutes."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again: nothing listens there
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(HwnasError, match=rf"^nothing answers at RAY_ADDRESS={address} \(.*\); start the cluster"):
            check_answers(address, f"RAY_ADDRESS={address}")
    check_answers("auto", "RAY_ADDRESS=auto")  # Ray's own forms are left to Ray


@pytest.fixture(scope="module")
def ray_running():
    """A local Ray instance, started the way a sweep starts one (no cluster to join) and stopped after the module:
    its own, even while another process runs one on this machine."""
    try:
        import ray
    except ImportError:  # not skipped: the suite tests Ray for real (README's test command installs the extra)
        pytest.fail("the Ray tests need the ray extra: pip install -e '.[test,ray]'")
    address = os.environ.pop("RAY_ADDRESS", None)
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    starter = RayExecutor(cpus=1)
    try:
        with starter:
            starter.connect()
            assert ray.is_initialized() and starter._connected  # it started the instance, so it will stop it
            # A worker may not import this test module by its name (importlib mode, another folder): send it by value.
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
            yield ray
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        assert not ray.is_initialized()  # the instance it started is stopped with it
        # ray.init's own SIGINT/SIGTERM handlers are gone with it: a run's stop handling is this process's again
        assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    finally:
        if address is not None:
            os.environ["RAY_ADDRESS"] = address


def test_ray_runs_every_item_as_a_task_and_keeps_order(ray_running, tmp_path):
    items = [Item(str(tmp_path), n) for n in (4, 0, 3, 1, 2)]
    results = executor("ray", cpus=1).map(write_one, items)
    assert [n for n, _ in results] == [4, 0, 3, 1, 2]
    assert all(given.get("CPU") == 1 and "GPU" not in given for _, given in results)  # each ran as a Ray task
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {f"{n}.txt": str(n * n) for n in range(5)}
    assert ray_running.is_initialized()  # a Ray this executor did not start is left running


def test_a_local_instance_runs_its_tasks_at_the_users_priority(ray_running):
    """Not Ray's default nice 15, which starves the runs beside any other work (25x slower under load)."""
    assert executor("ray").map(niceness, [0, 1]) == [os.nice(0)] * 2


def test_ray_honours_the_cpu_request(ray_running, tmp_path):
    """Two CPUs per task on a machine with two or more: every task still runs, and is given two."""
    results = executor("ray", cpus=2).map(write_one, [Item(str(tmp_path), n) for n in range(3)])
    assert [(n, given.get("CPU")) for n, given in results] == [(0, 2), (1, 2), (2, 2)]


def test_a_request_a_local_instance_cannot_meet_is_refused_instead_of_waiting_forever(ray_running):
    have = ray_running.cluster_resources()["CPU"]
    with pytest.raises(HwnasError, match=rf"^each run asks for {have + 1:g} CPUs \(cpus_per_run\) but the local Ray "
                                         rf"instance has {have:g}; ask for fewer, or set RAY_ADDRESS") as caught:
        RayExecutor(cpus=have + 1)._check_fits()
    assert "(--cpus-per-run)" in caught.value.cli


def test_a_failed_task_is_named_and_the_others_finish(ray_running, tmp_path):
    items = [Item(str(tmp_path), 0), Item(str(tmp_path), 1, fail="value"), Item(str(tmp_path), 2)]
    with pytest.raises(HwnasError) as caught:
        executor("ray").map(write_one, items)
    assert str(caught.value) == ("run item-1 failed: ValueError: item 1 cannot be done "
                                 "(the other runs finished; resume=True redoes only the failed)")
    assert caught.value.cli.endswith("--resume redoes only the failed)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.txt", "2.txt"]  # kept, for the resume


def test_several_failures_are_all_named_and_an_hwnas_error_keeps_its_kind(ray_running, tmp_path):
    items = [Item(str(tmp_path), 0, fail="disk"), Item(str(tmp_path), 1), Item(str(tmp_path), 2, fail="value")]
    with pytest.raises(RuntimeFailure) as caught:  # a full disk still exits as the OS refusing
        executor("ray").map(write_one, items)
    assert str(caught.value) == ("2 of 3 runs failed: item-0: no space left on device; "
                                 "item-2: ValueError: item 2 cannot be done "
                                 "(the other runs finished; resume=True redoes only the failed)")
    assert [p.name for p in tmp_path.iterdir()] == ["1.txt"]


# One search per point, two points (two seeds at one target), a few steps each: the sweep's plumbing, not its quality.
SWEEP = ["--target-ratio", "0.9", "--seeds", "0,1", "--image-size", "32", "--crop", "16", "--batch-size", "2",
         "--steps-per-epoch", "2", "--epochs", "1", "--warmup-epochs", "0", "--threads", "1", "--prefetch", "0"]


def test_a_sweep_on_ray_writes_the_rows_the_local_loop_writes(ray_running, tmp_path, monkeypatch, cli, one_thread):
    """`hwnas sweep --executor ray`: every search a Ray task, the same sweep.csv as one after another here."""
    import hwnas
    import hwnas.nas.sweep

    lut = tmp_path / "tiny.csv"
    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out=lut)
    used = []
    choose = hwnas.nas.sweep.executor
    monkeypatch.setattr(hwnas.nas.sweep, "executor", lambda name, **asked: used.append(choose(name, **asked)) or used[-1])
    monkeypatch.chdir(tmp_path)  # the Ray run's folders are absolute, the local run's relative: the rows name them alike
    tables = {}
    for name in ("local", "ray"):
        code, _, err = cli("sweep", "--lut", lut, *SWEEP, "--executor", name, "--out", name)
        assert code == 0, err
        tables[name] = (tmp_path / name / "sweep.csv").read_text().splitlines()
    assert [type(ex).__name__ for ex in used] == ["LocalExecutor", "RayExecutor"]
    assert tables["ray"] == tables["local"] and len(tables["ray"]) == 3  # header and two runs, the same numbers
    for run in ("mu-1-target0.9x-seed0", "mu-1-target0.9x-seed1"):
        assert (tmp_path / "ray" / run / "arch.json").is_file()
    assert ray_running.is_initialized()  # the sweep used the instance it found, and left it running


def test_a_sweep_without_ray_installed_is_refused_before_it_writes(tmp_path, monkeypatch, cli):
    """`--executor ray` without Ray: the install sentence, exit 1, and no sweep.yaml to resume from."""
    import hwnas

    lut = tmp_path / "tiny.csv"
    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out=lut)
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = cli("sweep", "--lut", lut, *SWEEP, "--executor", "ray", "--out", tmp_path / "s")
    assert code != 0 and "pip install 'hwnas[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "s" / "sweep.yaml").exists()
