"""An error that names a setting says it as its reader gave it: the parameter from Python, the flag on the command line."""

from __future__ import annotations

import pytest

from hwnas.contracts.errors import HwnasError, RuntimeFailure, Setting, naming, setting, wording


def test_a_setting_reads_as_a_keyword_and_as_a_flag():
    assert setting("image_size", 256) == Setting("image_size=256", "--image-size 256")
    assert setting("out", "runs/a") == Setting("out='runs/a'", "--out runs/a")
    assert setting("force", True) == Setting("force=True", "--force")  # a switch is its flag alone
    assert setting("tile") == Setting("tile", "--tile")
    assert setting("threads", 2, python="backend_options['threads']") == Setting("backend_options['threads']", "--threads 2")


def test_an_error_carries_both_sentences():
    err = naming("this table was measured at 32px; pass {image_size} or rebuild it.", image_size=32)
    assert str(err) == "this table was measured at 32px; pass image_size=32 or rebuild it."
    assert err.cli == "this table was measured at 32px; pass --image-size 32 or rebuild it."
    assert HwnasError("one wording").cli == "one wording"  # an error that names no setting reads the same
    assert isinstance(naming("cannot create {out}.", RuntimeFailure, out="x"), RuntimeFailure)


def test_only_the_named_fields_are_replaced():
    words = wording("{tile} is too large for {'a': 1}; see {other}.", tile=setting("tile"))
    assert words == Setting("tile is too large for {'a': 1}; see {other}.", "--tile is too large for {'a': 1}; see {other}.")


def test_the_command_line_prints_the_flag_wording(cli, tmp_path):
    (tmp_path / "a.json").write_text('{"space": "nafnet-unet", "choices": {}}')
    code, out, err = cli("train", "--preset", "tiny", "--arch", tmp_path / "a.json", "--uniform", "cbr", "--out", tmp_path / "r")
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == "error: give either --arch or --uniform, not both."


def test_python_callers_read_the_parameters(tmp_path):
    import hwnas

    with pytest.raises(HwnasError) as err:
        hwnas.train(spec={"preset": "tiny"}, arch={"space": "nafnet-unet", "choices": {}}, uniform="cbr", out=tmp_path / "r")
    assert str(err.value) == "give either arch or uniform, not both."
