"""Tables checked row by row: a new candidate extends a table, a changed block's rows are
stale, and tables from before row fingerprints still load and work."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import hwnas.searchspaces.nafnet_blocks as nafnet_blocks
import hwnas.searchspaces.nafnet_unet as nafnet_unet
from hwnas.backends.macs import MacsBackend
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import FINGERPRINT, LatencyTable, TableMeta, sidecar_path
from hwnas.searchspaces.nafnet_blocks import CANDIDATES, CBRBlock, make_candidate
from hwnas.tables.building import build_table, plan_build

SIZE = 32
FIFTH = "cbr_wide"


class CountingMacs(MacsBackend):
    """The MACs backend, remembering which units it was asked for."""

    def __init__(self):
        super().__init__()
        self.measured: list[str] = []

    def measure(self, units, on_result=None):
        self.measured += [u.name for u in units]
        return super().measure(units, on_result)


def tiny(**options):
    return nafnet_unet.NAFNetUNetSpace.from_options("tiny", **options)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A complete table of the four-candidate tiny space (built once; tests get a copy)."""
    path = tmp_path_factory.mktemp("built") / "t.csv"
    build_table(tiny(), SIZE, MacsBackend(), path)
    return path


@pytest.fixture
def table_path(built, tmp_path):
    path = tmp_path / "t.csv"
    shutil.copy(built, path)
    shutil.copy(sidecar_path(built), sidecar_path(path))
    return path


@pytest.fixture
def fifth(monkeypatch):
    """The tiny space with a fifth candidate, as if one were added to `nafnet_blocks`."""
    monkeypatch.setitem(nafnet_blocks.BLOCKS, FIFTH, lambda c, e: CBRBlock(c, expand=4))
    return tiny(candidates=CANDIDATES + (FIFTH,))


@pytest.fixture
def changed(monkeypatch):
    """The tiny space after its `cbr` block changed (a wider hidden layer)."""
    change_cbr(monkeypatch)
    return tiny()


def change_cbr(monkeypatch) -> None:
    monkeypatch.setattr(nafnet_unet, "make_candidate", lambda name, c: CBRBlock(c, expand=3) if name == "cbr" else make_candidate(name, c))


def check(table: LatencyTable, space) -> None:
    table.check(space=space.name, fingerprint=space.fingerprint(), image_size=SIZE, device="analytic", backend="macs",
                units=space.layout(SIZE).unit_fingerprints)


def lines(path) -> set[str]:
    return set(path.read_text().splitlines()[1:])


def strip_fingerprints(path) -> None:
    """Make the table at `path` look like one written before row fingerprints existed."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.drop(columns=[FINGERPRINT]).to_csv(path, index=False)


def test_rows_carry_their_unit_fingerprints(table_path):
    table = LatencyTable.load(table_path)
    assert table.fingerprinted
    space = tiny()
    assert table.matching(space.layout(SIZE).unit_fingerprints) == list(space.layout(SIZE).unit_fingerprints)


def test_a_fifth_candidate_is_measured_alone_and_the_old_rows_are_kept(table_path, fifth):
    before = lines(table_path)
    assert len(plan_build(fifth, SIZE, MacsBackend(), table_path).missing) == 4  # the new candidate at 4 shapes
    backend = CountingMacs()
    build_table(fifth, SIZE, backend, table_path)
    assert backend.measured == [FIFTH] * 4
    after = lines(table_path)
    assert before <= after and len(after) == len(before) + 4  # old rows byte for byte
    meta = TableMeta.read(table_path)
    assert meta.fingerprint == fifth.fingerprint() and FIFTH in meta.space_config["candidates"]
    table = LatencyTable.load(table_path)
    check(table, fifth)
    table.require(fifth.layout(SIZE).units)
    check(table, tiny())  # the four-candidate space still finds all its rows
    again = CountingMacs()
    build_table(fifth, SIZE, again, table_path)
    assert again.measured == []


def test_a_changed_block_s_rows_are_stale_until_re_measured(table_path, changed):
    with pytest.raises(HwnasError, match=r"has 4 stale rows \(candidate cbr@1x8x32x32, .*\): their blocks changed") as err:
        check(LatencyTable.load(table_path), changed)
    message = str(err.value)
    assert "hwnas build-lut" in message and "pass force=True" in message and "\n" not in message
    assert "pass --force" in err.value.cli
    before = lines(table_path)
    backend = CountingMacs()
    build_table(changed, SIZE, backend, table_path)
    assert backend.measured == ["cbr"] * 4
    after = lines(table_path)
    assert len(before & after) == len(before) - 4 and len(after) == len(before)  # only cbr's rows changed
    check(LatencyTable.load(table_path), changed)


def test_without_the_space_s_units_the_whole_space_fingerprint_decides(table_path, monkeypatch):
    table = LatencyTable.load(table_path)
    table.check(space="nafnet-unet", fingerprint=tiny().fingerprint(), image_size=SIZE)  # the old call still works
    change_cbr(monkeypatch)
    with pytest.raises(HwnasError, match="built for another nafnet-unet configuration"):
        table.check(space="nafnet-unet", fingerprint=tiny().fingerprint(), image_size=SIZE)


def test_a_table_sharing_no_row_with_the_space_is_refused(table_path):
    with pytest.raises(HwnasError, match="built for another nafnet-unet configuration"):
        check(LatencyTable.load(table_path), tiny(width=16))


def test_a_table_without_fingerprints_loads_and_works(table_path):
    strip_fingerprints(table_path)
    table = LatencyTable.load(table_path)
    assert not table.fingerprinted
    check(table, tiny())
    table.require(tiny().layout(SIZE).units)
    backend = CountingMacs()
    build_table(tiny(), SIZE, backend, table_path)
    assert backend.measured == []


def test_a_table_without_fingerprints_is_checked_against_the_whole_space(table_path, changed):
    strip_fingerprints(table_path)
    with pytest.raises(HwnasError, match="built for another nafnet-unet configuration"):
        check(LatencyTable.load(table_path), changed)
    with pytest.raises(HwnasError, match="built for another nafnet-unet configuration.*force=True"):
        build_table(changed, SIZE, CountingMacs(), table_path)  # its sidecar's space no longer rebuilds: nothing to trust


def test_a_table_without_fingerprints_is_extended_when_its_space_still_rebuilds(table_path, fifth):
    strip_fingerprints(table_path)
    old = LatencyTable.load(table_path).frame.set_index(["kind", "name", "input_shape"])["median_ms"]
    backend = CountingMacs()
    table = build_table(fifth, SIZE, backend, table_path)
    assert backend.measured == [FIFTH] * 4
    assert table.fingerprinted and LatencyTable.load(table_path).fingerprinted
    new = LatencyTable.load(table_path).frame.set_index(["kind", "name", "input_shape"])["median_ms"]
    assert new[old.index].equals(old)


def test_the_cache_starts_a_new_spaces_table_from_the_old_one(built, fifth, tmp_path, monkeypatch):
    """The cached file is named by the space's fingerprint, which a fifth candidate changes: the new
    file starts from the old one's matching rows, so only the new candidate is measured."""
    from hwnas.tables.building import default_table_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    new_path = default_table_path(fifth, "macs", "analytic", SIZE)
    old_path = new_path.with_name(new_path.name.replace(fifth.fingerprint(), TableMeta.read(built).fingerprint))
    assert new_path != old_path
    old_path.parent.mkdir(parents=True)
    shutil.copy(built, old_path)
    shutil.copy(sidecar_path(built), sidecar_path(old_path))
    backend = CountingMacs()
    build_table(fifth, SIZE, backend, new_path)
    assert backend.measured == [FIFTH] * 4
    assert lines(old_path) <= lines(new_path) and old_path.exists()
