"""`hwnas.runs.rows`: the one CSV format (steps.csv, metrics.csv, sweep.csv, eval CSVs) and the append-only step log."""

from hwnas.runs.rows import RowLog, format_rows, write_rows


def test_columns_in_first_seen_order_none_empty_numbers_round_trip():
    rows = [{"epoch": 0, "loss": 0.1 + 0.2, "val": None}, {"epoch": 1, "extra": "a,b", "loss": 1e-06}]
    assert format_rows(rows) == 'epoch,loss,val,extra\n0,0.30000000000000004,,\n1,1e-06,,"a,b"\n'
    assert format_rows([]) == ""
    assert format_rows([{"a": 1, "b": 2}], ["b"]) == "b\n2\n"


def test_write_rows_rewrites_the_whole_file(tmp_path):
    path = tmp_path / "metrics.csv"
    write_rows(path, [{"epoch": 0}, {"epoch": 1}])
    write_rows(path, [{"epoch": 0}])
    assert path.read_text() == "epoch\n0\n"


def test_a_resumed_step_log_keeps_only_the_rows_before_the_checkpoint(tmp_path):
    path = tmp_path / "steps.csv"
    with RowLog(path, ["global_step", "loss"]) as log:
        for step in range(5):
            log.write({"global_step": step, "loss": step / 2})
    with RowLog(path, ["global_step", "loss"], resume_from=3) as log:  # the checkpoint was at step 3
        log.write({"global_step": 3, "loss": None})
    assert path.read_text() == "global_step,loss\n0,0.0\n1,0.5\n2,1.0\n3,\n"
    with RowLog(path, ["global_step"], enabled=False) as log:  # another rank: nothing read or written
        log.write({"global_step": 9})
    assert path.read_text().endswith("3,\n")
