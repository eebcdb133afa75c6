"""A backend's flags come from its Options model (`hwnas.cli.backend_flags`): a backend the command
line has never heard of gets first-class flags of its own, and a flag it lacks is one usage sentence."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from hwnas.contracts import plugins
from hwnas.backends.macs import DEVICE, MacsBackend
from hwnas.contracts.latency import TableMeta


class ToyOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = DEVICE
    ms_per_gmac: float = Field(1.0, gt=0)
    lanes: int = Field(4, ge=1, description="how many lanes the toy chip has")
    turbo: bool = False
    flavour: Literal["plain", "spicy"] = "plain"
    label: str = ""


class ToyBackend(MacsBackend):
    """A device-free toy whose options are flags it never declared to the command line."""

    name: ClassVar[str] = "toy"
    Options: ClassVar[type[BaseModel]] = ToyOptions

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), **self.options.model_dump()}


@pytest.fixture(autouse=True)
def toy(monkeypatch):
    monkeypatch.setitem(plugins._explicit[plugins.BACKEND_GROUP], "toy", ToyBackend)


TINY = ["--preset", "tiny", "--image-size", "32"]


def test_flags_generated_from_the_options_model(cli, tmp_path):
    out = tmp_path / "toy.csv"
    code, stdout, err = cli("build-lut", "--backend", "toy", *TINY, "--lanes", "8", "--turbo", "--flavour=spicy",
                            "--label", "2.31", "--out", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["measured"] == 24
    settings = TableMeta.read(out).settings
    assert (settings["lanes"], settings["turbo"], settings["flavour"], settings["label"]) == (8, True, "spicy", "2.31")


def test_a_generated_flag_is_validated_by_the_options_model(cli, tmp_path):
    code, _, err = cli("build-lut", "--backend", "toy", *TINY, "--lanes", "0", "--out", tmp_path / "t.csv", "--dry-run")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: invalid --lanes for backend toy"), err


def test_an_unknown_backend_flag_is_one_sentence_listing_the_backends_flags(cli, tmp_path):
    code, out, err = cli("build-lut", "--backend", "toy", *TINY, "--no-such", "2", "--out", tmp_path / "t.csv")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and "Traceback" not in err and len(lines) == 2  # the usage line, then the sentence
    assert lines[-1] == ("error: --no-such does not apply to backend toy; its flags are --device, --ms-per-gmac, --lanes, "
                         "--turbo, --flavour, --label (and -b KEY=VALUE); see `hwnas build-lut --help`.")
    assert not (tmp_path / "t.csv").exists()


def test_another_backends_flag_is_refused_naming_this_backends_flags(cli, tmp_path):
    code, out, err = cli("build-lut", "--backend", "toy", *TINY, "--threads", "2", "--out", tmp_path / "t.csv")
    assert code == 2 and out == ""
    assert err == ("error: --threads does not apply to backend toy; its flags are --device, --ms-per-gmac, --lanes, "
                   "--turbo, --flavour, --label (and -b KEY=VALUE).\n")


def test_profile_takes_the_same_flags(cli):
    code, _, err = cli("profile", "--backend", "toy", *TINY, "--uniform", "naf", "--no-such", "1")
    assert code == 2 and "--no-such does not apply to backend toy" in err.splitlines()[-1], err


def test_backends_name_lists_its_flags(cli):
    code, out, err = cli("backends", "toy")
    assert code == 0, err
    assert "--lanes N" in out and "how many lanes the toy chip has" in out and "--flavour plain|spicy" in out
    assert "--turbo " in out  # a switch takes no value
    code, out, _ = cli("build-lut", "--help")
    assert code == 0 and "toy: " in out and "--lanes N" in out
