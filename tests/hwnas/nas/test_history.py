"""Alpha history: long-format CSV rewritten from state, and its plots."""

from hwnas.nas.history import alpha_csv, plot_alpha, plot_entropy, read_alpha_history, write_alpha_history

HISTORY = [
    {"epoch": e, "entropy": 1.0 - 0.2 * e,
     "alphas": {"enc0.0": {"naf": 0.25 + 0.1 * e, "cbr": 0.75 - 0.1 * e}, "mid.0": {"naf": 0.5, "cbr": 0.5}}}
    for e in range(3)
]


def test_csv_is_long_format_with_one_row_per_epoch_position_candidate(tmp_path):
    text = alpha_csv(HISTORY)
    lines = text.splitlines()
    assert lines[0] == "epoch,position,candidate,alpha"
    assert len(lines) == 1 + 3 * 2 * 2
    assert lines[1] == "0,enc0.0,naf,0.250000"
    write_alpha_history(tmp_path / "a.csv", HISTORY)
    back = read_alpha_history(tmp_path / "a.csv")
    assert [r["epoch"] for r in back] == [0, 1, 2]
    assert back[2]["alphas"]["enc0.0"]["cbr"] == 0.55


def test_rewriting_never_duplicates_rows(tmp_path):
    path = tmp_path / "a.csv"
    write_alpha_history(path, HISTORY[:2])
    write_alpha_history(path, HISTORY)
    assert path.read_text() == alpha_csv(HISTORY)


def test_plots_are_png_files(tmp_path):
    plot_alpha(tmp_path / "alpha.png", HISTORY, title="t")
    plot_entropy(tmp_path / "entropy.png", HISTORY)
    for name in ("alpha.png", "entropy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_history_writes_no_plot(tmp_path):
    plot_alpha(tmp_path / "alpha.png", [])
    assert not (tmp_path / "alpha.png").exists()
