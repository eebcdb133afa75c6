"""What else the machine does while we time: the record a table's sidecar keeps, and when it is busy."""

from __future__ import annotations

from hwnas.tables.machine_load import BUSY_CORES, BUSY_STEAL_PCT, LoadWatch, cores


def test_a_watch_records_load_and_other_processes():
    watch = LoadWatch().start()
    sum(i * i for i in range(10000))  # this process's own work is not "other processes"
    record = watch.stop().record()
    assert set(record) == {"load_1min_start", "load_1min_end", "other_processes_cores", "steal_pct", "cores", "seconds"}
    assert record["cores"] == cores() >= 1 and record["seconds"] >= 0
    assert record["other_processes_cores"] is None or record["other_processes_cores"] >= 0
    assert record["steal_pct"] is None or 0 <= record["steal_pct"] <= 100


def test_busy_by_other_processes_or_else_by_the_load_average():
    assert LoadWatch(other_cores=BUSY_CORES + 0.5).busy()
    assert not LoadWatch(other_cores=0.0, load_start=50.0).busy()  # measured beats the load average
    assert LoadWatch(other_cores=None, load_start=10.0 * cores()).busy()
    assert not LoadWatch(other_cores=None, load_start=None).busy()
    assert "other processes kept 1.50 cores busy" in LoadWatch(other_cores=1.5, load_start=2.0, load_end=2.1).describe()


def test_steal_by_the_hypervisor_makes_a_measurement_busy_even_with_nothing_else_running():
    assert LoadWatch(other_cores=0.0, steal_pct=BUSY_STEAL_PCT + 1).busy()
    assert not LoadWatch(other_cores=0.0, steal_pct=BUSY_STEAL_PCT - 1).busy()
    assert "the hypervisor took 7.5% (steal)" in LoadWatch(other_cores=0.0, steal_pct=7.5, load_start=0.1).describe()
