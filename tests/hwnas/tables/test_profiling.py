"""The end-to-end check: several networks against a table, the fidelity summary, ONNX files."""

from __future__ import annotations

import pytest

from hwnas.backends.macs import MacsBackend
from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
from hwnas.tables.fidelity import Fidelity
from hwnas.tables.profiling import (
    ProfileResult, exported_architecture, profile_architectures, profile_onnx, random_architecture,
    random_architectures,
)
from hwnas.tables.building import build_table
from hwnas.contracts.latency import Measurement
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.contracts.space import Architecture

SIZE = 32


@pytest.fixture(scope="module")
def tiny():
    return NAFNetUNetSpace.from_options("tiny")


@pytest.fixture(scope="module")
def macs_table(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("macs") / "tiny.csv"
    return build_table(tiny, SIZE, MacsBackend(), path), path


def result(error_pct: float) -> ProfileResult:
    m = Measurement(name="n", input_shape=(1,), median_ms=100.0, p10_ms=100.0, p90_ms=100.0, runs=1, device="d", runtime="r")
    from hwnas.tables.profiling import Prediction

    return ProfileResult("n", Architecture(space="s", choices={}), m, Prediction(100.0 + error_pct, 0.0, "t"))


def test_fidelity_sums_up_errors_with_their_signs():
    f = Fidelity.of([result(e) for e in (3.0, -12.0, 5.0, 10.0)])
    assert f.count == 4 and f.within == 3  # +-10% inclusive
    assert f.mean_abs_pct == pytest.approx(7.5) and f.mean_pct == pytest.approx(1.5) and f.worst_pct == pytest.approx(-12.0)
    assert f.to_dict()["within"] == 3
    assert "mean |error| 7.5 %, worst -12.0 %, 3 of 4 within +-10 %" in f.line()


def test_random_architectures_are_seeded_and_labelled(tiny):
    archs = random_architectures(tiny, SIZE, 3, first_seed=5)
    assert [label for label, _ in archs] == ["random-5", "random-6", "random-7"]
    assert archs[0][1] == random_architecture(tiny, SIZE, 5)


def test_several_networks_in_batches_against_a_table(tiny, macs_table):
    table, path = macs_table
    seen = []
    results = profile_architectures(tiny, SIZE, random_architectures(tiny, SIZE, 5), MacsBackend(), table=table,
                                    table_source=str(path), batch=2, same_rounds=True, on_result=seen.append)
    assert [r.label for r in results] == [r.label for r in seen] == [f"random-{i}" for i in range(5)]
    for r in results:
        assert r.measured.kind == "network" and r.prediction.table == str(path)
        # MACs add up exactly (the skip additions count 0): the table and its units timed again agree with the network
        assert r.error_pct == pytest.approx(0.0, abs=1e-6) and r.error_same_rounds_pct == pytest.approx(0.0, abs=1e-6)
    assert Fidelity.of(results).within == 5 and Fidelity.of(results, same_rounds=True).count == 5
    assert [r.batch for r in results] == [0, 0, 1, 1, 2]  # batch=2: the fifth network is timed alone
    assert Fidelity.scale_free(results).count == 4  # ... so it has no scale-free error
    assert "error_same_rounds_pct" in results[0].to_dict()


def test_an_architecture_of_another_space_fails_before_measuring(tiny, macs_table):
    from hwnas.contracts.errors import HwnasError

    bad = Architecture(space=tiny.name, choices={"nowhere": "naf"})
    with pytest.raises(HwnasError):
        profile_architectures(tiny, SIZE, [("bad", bad)], MacsBackend(), table=macs_table[0])


def test_an_exported_onnx_file_is_timed_and_predicted(tiny, tmp_path):
    from hwnas.contracts.config import SpaceSpec
    from hwnas.deploy.inference import onnx_metadata
    from hwnas.deploy.onnx_export import export_model
    from hwnas.contracts.space import freeze

    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(runs=3, warmup=1, passes=1))
    table = build_table(tiny, SIZE, backend, tmp_path / "ort.csv")
    arch = random_architecture(tiny, SIZE, 2)
    spec = SpaceSpec(space=tiny.name, preset="tiny")
    path = tmp_path / "net.onnx"
    export_model(freeze(tiny, arch).eval(), path, metadata=onnx_metadata(spec, arch, tiny.multiple), in_channels=3,
                 align=tiny.multiple)
    assert exported_architecture(path)[1] == arch
    got = profile_onnx(path, backend, tiny, SIZE, table=table, table_source="ort.csv")
    assert got.architecture == arch and got.prediction is not None and got.error_pct is not None
    assert got.measured.input_shape == (1, 3, SIZE, SIZE) and got.to_dict()["table"] == "ort.csv"
    # Another image size than the table's: timed, not predicted, and told why.
    other = profile_onnx(path, backend, tiny, 64, table=table)
    assert other.prediction is None and other.measured.input_shape == (1, 3, 64, 64) and "the table is for 1x3x32x32" in other.note
    # A file without hwnas metadata: timed only.
    from hwnas.deploy.onnx_export import to_onnx

    plain = to_onnx(freeze(tiny, arch).eval(), (1, 3, SIZE, SIZE), tmp_path / "plain.onnx")
    bare = profile_onnx(plain, backend, tiny, SIZE, table=table)
    assert bare.architecture is None and bare.prediction is None and "no hwnas metadata" in bare.note


def _exported(tiny, path, arch, *, precision=None, **options):
    """`arch` of the tiny space (with `options` overridden) exported to `path`; marked as `precision` as `hwnas export` does."""
    import onnx

    from hwnas.contracts.config import SpaceSpec
    from hwnas.deploy.inference import onnx_metadata
    from hwnas.deploy.onnx_export import export_model
    from hwnas.contracts.space import freeze

    spec = SpaceSpec(space=tiny.name, preset="tiny", options=options)
    space = spec.create()
    export_model(freeze(space, arch).eval(), path, metadata=onnx_metadata(spec, arch, space.multiple), in_channels=3,
                 align=space.multiple)
    if precision is not None:
        model = onnx.load(str(path))
        entry = model.metadata_props.add()
        entry.key, entry.value = "precision", precision
        onnx.save(model, str(path))
    return path


def test_an_export_of_another_precision_than_the_table_is_refused_before_timing(tiny, macs_table, tmp_path):
    from hwnas.contracts.errors import HwnasError

    table, _ = macs_table
    path = _exported(tiny, tmp_path / "net-int8.onnx", random_architecture(tiny, SIZE, 1), precision="int8")
    with pytest.raises(HwnasError, match=r"exported at precision int8 but the table fp32.csv times fp32; .*--precision int8"):
        profile_onnx(path, OnnxRuntimeBackend(OnnxRuntimeOptions(runs=1, warmup=0, passes=1)), tiny, SIZE, table=table,
                     table_source="fp32.csv")


def test_a_file_of_the_same_preset_with_another_option_names_the_option(tiny, macs_table, tmp_path):
    table, _ = macs_table
    path = _exported(tiny, tmp_path / "w16.onnx", random_architecture(tiny, SIZE, 1), width=16)
    got = profile_onnx(path, OnnxRuntimeBackend(OnnxRuntimeOptions(runs=1, warmup=0, passes=1)), tiny, SIZE, table=table)
    assert got.prediction is None and "has width 16 (the table's: 8)" in got.note


def test_a_folder_given_as_the_onnx_file_is_named_as_a_folder(tiny, tmp_path):
    from hwnas.contracts.errors import HwnasError

    with pytest.raises(HwnasError, match=r"is a folder, not an ONNX file") as err:
        profile_onnx(tmp_path, OnnxRuntimeBackend(OnnxRuntimeOptions(runs=1, warmup=0, passes=1)), tiny, SIZE)
    assert "--out " + str(tmp_path) not in str(err.value)  # no advice to export onto a folder
