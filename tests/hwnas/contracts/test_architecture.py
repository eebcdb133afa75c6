from __future__ import annotations

import pytest

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.space import Architecture

POSITIONS = {"a.0": ("x", "y"), "b.0": ("x", "y", "z")}


def test_json_round_trip_is_byte_stable(tmp_path):
    arch = Architecture(space="s", choices={"a.0": "y", "b.0": "z"})
    arch.save(tmp_path / "arch.json")
    again = Architecture.load(tmp_path / "arch.json")
    assert again == arch
    assert again.to_json() == (tmp_path / "arch.json").read_text()


def test_is_frozen():
    arch = Architecture(space="s", choices={"a.0": "x"})
    with pytest.raises(Exception):
        arch.space = "t"


@pytest.mark.parametrize(
    "arch,fragment",
    [
        (Architecture(space="other", choices={"a.0": "x", "b.0": "x"}), "for space 'other'"),
        (Architecture(space="s", choices={"a.0": "x"}), "missing positions"),
        (Architecture(space="s", choices={"a.0": "x", "b.0": "x", "c.0": "x"}), "unknown positions"),
        (Architecture(space="s", choices={"a.0": "z", "b.0": "x"}), "has no candidate 'z'"),
    ],
)
def test_foreign_architectures_are_refused_in_one_line(arch, fragment):
    with pytest.raises(HwnasError) as err:
        arch.check("s", POSITIONS)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["{", "[]", '{"space": "s"}', '{"space": "s", "choices": {"a": 1}, "x": 2}'])
def test_malformed_json_is_one_line(text):
    with pytest.raises(HwnasError) as err:
        Architecture.from_json(text, source="arch.json")
    assert "arch.json" in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(HwnasError, match="cannot read architecture file"):
        Architecture.load(tmp_path / "nope.json")


def test_uniform_rejects_candidate_not_offered():
    with pytest.raises(HwnasError, match="not offered"):
        Architecture.uniform("s", POSITIONS, "z")
