"""`hwnas build-lut --config FILE`: the file's settings (BuildLutConfig's fields), the flags given on top."""

from __future__ import annotations

import json
import sys

import pytest

from hwnas.cli import main


def hwnas(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["hwnas", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_a_config_file_sets_what_flags_would_and_flags_win(tmp_path, monkeypatch, capsys):
    config = tmp_path / "build.yaml"
    config.write_text(f"spec: {{space: nafnet-unet, preset: tiny}}\nimage_size: 16\nbackend: macs\nout: {tmp_path / 'from-file.csv'}\n")
    code, out, err = hwnas(monkeypatch, capsys, "build-lut", "--config", str(config), "--dry-run", "--json")
    assert code == 0, err
    facts = json.loads(out)
    assert (facts["preset"], facts["image_size"], facts["backend"], facts["path"]) == ("tiny", 16, "macs", str(tmp_path / "from-file.csv"))
    assert not (tmp_path / "from-file.csv").exists()  # a dry run writes nothing

    table = tmp_path / "t32.csv"
    code, out, err = hwnas(monkeypatch, capsys, "build-lut", "--config", str(config), "--image-size", "32", "--out", str(table), "--json")
    assert code == 0, err
    assert json.loads(out)["measured"] == json.loads(out)["units"] > 0
    sidecar = json.loads(table.with_suffix(".meta.json").read_text())
    assert sidecar["image_size"] == 32 and sidecar["backend"] == "macs" and not (tmp_path / "from-file.csv").exists()


@pytest.mark.parametrize("text, fragment", [
    ("spec: tiny\n", "spec, its options and backend_options are mappings"),
    ("backend: macs\nforce: sometimes\n", "force is true or false, not 'sometimes'"),
    ("epochs: 3\n", "has an unknown setting 'epochs'"),
    ("image_size: 4\nbackend: macs\n", "--image-size"),
])
def test_a_bad_config_file_is_one_line(tmp_path, monkeypatch, capsys, text, fragment):
    config = tmp_path / "build.yaml"
    config.write_text(text)
    code, out, err = hwnas(monkeypatch, capsys, "build-lut", "--config", str(config), "--out", str(tmp_path / "t.csv"))
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: ") and fragment in err.strip().splitlines()[-1], err
    assert list(tmp_path.iterdir()) == [config]  # nothing written
