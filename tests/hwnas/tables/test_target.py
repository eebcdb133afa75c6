"""The measurement target (`hwnas.tables.target`): resolved from flags or a table's sidecar, and one
call that refuses a table measured for anything else."""

from __future__ import annotations

import pytest

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, TableMeta
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.tables.building import make_backend, new_meta
from hwnas.tables.target import MeasurementTarget

SIZE = 32


@pytest.fixture(scope="module")
def table():
    """An (empty) fp32 onnxruntime table of the tiny space: what it was measured for is all a check reads."""
    return LatencyTable(new_meta(NAFNetUNetSpace.from_options("tiny"), SIZE, make_backend("onnxruntime", {"threads": 1})))


def target(**given) -> MeasurementTarget:
    fields = dict(space="nafnet-unet", preset="tiny", image_size=SIZE, backend="onnxruntime", backend_options={"threads": 1})
    return MeasurementTarget(**{**fields, **given})


def test_a_table_of_its_own_target_passes(table):
    target().check(table)
    assert table.meta.precision == "fp32"


@pytest.mark.parametrize("given, refused", [
    (dict(image_size=64), "this latency table was measured at 32px, not 64px"),
    (dict(precision="int8"), "this latency table was measured at precision fp32, not int8"),
    (dict(backend_options={"threads": 1, "precision": "int8"}), "measured at precision fp32, not int8"),  # -b precision=int8
    (dict(backend="macs", backend_options={}), "measured with backend 'onnxruntime', not 'macs'"),
    (dict(backend_options={"threads": 2}), "measured with threads=1, not 2"),
])
def test_a_table_of_another_target_is_refused_in_one_sentence(table, given, refused):
    with pytest.raises(HwnasError) as err:
        target(**given).check(table)
    assert refused in str(err.value) and str(err.value).count(". ") == 0


def test_the_sidecar_completes_what_was_not_given_and_refuses_a_contradiction(table):
    meta = table.meta.model_copy(update={"settings": {**table.meta.settings, "precision": "int8"}})
    got = MeasurementTarget().with_table(meta, "t.csv").with_defaults()
    assert (got.space, got.preset, got.image_size, got.backend, got.precision) == ("nafnet-unet", "tiny", SIZE, "onnxruntime", "int8")
    assert got.settings["threads"] == 1
    with pytest.raises(HwnasError, match="image_size=64 contradicts the latency table t.csv, which was built for image_size=32"):
        MeasurementTarget(image_size=64).with_table(meta, "t.csv")


def test_precision_is_a_typed_field_of_the_sidecar():
    old = TableMeta(space="s", fingerprint="f", image_size=8, backend="b", device="d", settings={})
    assert old.precision == "fp32"  # tables from before precisions
    assert old.model_copy(update={"settings": {"precision": "w8a16"}}).precision == "w8a16"
