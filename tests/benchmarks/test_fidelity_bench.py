"""bench_fidelity's batch numbers: a resumed run's batches stay apart from the earlier ones."""

from __future__ import annotations


def test_a_resumed_run_numbers_its_batches_on(benchmark_script, tmp_path):
    bench = benchmark_script("bench_fidelity.py")
    common = benchmark_script("common.py")
    path = tmp_path / "fidelity.csv"
    assert bench.next_batch(path, "a") == 0  # no file yet
    for run, seed, batch in (("a", 0, 0), ("a", 1, 0), ("a", 2, 1), ("b", 0, 7)):
        common.append_row(path, {"run": run, "seed": seed, "batch": batch})
    assert bench.next_batch(path, "a") == 2 and bench.next_batch(path, "b") == 8 and bench.next_batch(path, "c") == 0


def test_rows_from_before_the_batch_column_do_not_count(benchmark_script, tmp_path):
    bench = benchmark_script("bench_fidelity.py")
    common = benchmark_script("common.py")
    path = tmp_path / "fidelity.csv"
    common.append_row(path, {"run": "a", "seed": 0})
    assert bench.next_batch(path, "a") == 0
