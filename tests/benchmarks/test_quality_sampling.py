"""The random-architecture sampler of benchmarks/bench_quality.py: random search at equal cost.

A small fake table (3 positions x 3 candidates, 27 architectures) whose band of
architectures within +-5% of a target is known by enumeration.
"""

import itertools
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bq(benchmark_script):
    return benchmark_script("bench_quality.py")


# ms per candidate per position; candidate "a" is the expensive base block.
COSTS = {
    "p0": {"a": 4.0, "b": 2.0, "c": 1.0},
    "p1": {"a": 3.0, "b": 2.0, "c": 0.5},
    "p2": {"a": 2.0, "b": 1.5, "c": 1.0},
}
FIXED = 1.0


def _all_archs():
    labels = sorted(COSTS)
    for combo in itertools.product(*(sorted(COSTS[l]) for l in labels)):
        yield dict(zip(labels, combo))


def _band(bq, target, tol=0.05):
    return [a for a in _all_archs() if abs(bq.predicted(COSTS, FIXED, a) - target) <= tol * target]


def test_predicted_sums_fixed_and_chosen_candidates(bq):
    assert bq.predicted(COSTS, FIXED, {"p0": "a", "p1": "c", "p2": "b"}) == pytest.approx(1.0 + 4.0 + 0.5 + 1.5)


def test_samples_are_distinct_and_within_tolerance(bq):
    target = 7.0
    band = _band(bq, target)
    assert len(band) >= 3  # the fake table is built so that the band is not trivial
    got = bq.sample_at_latency(COSTS, FIXED, target, len(band), seed=1)
    assert len({tuple(sorted(a.items())) for a in got}) == len(band)
    for arch in got:
        assert abs(bq.predicted(COSTS, FIXED, arch) - target) <= 0.05 * target
    assert sorted(map(lambda a: tuple(sorted(a.items())), got)) == sorted(map(lambda a: tuple(sorted(a.items())), band))


def test_exclude_and_determinism(bq):
    target = 7.0
    band = _band(bq, target)
    searched = band[0]
    first = bq.sample_at_latency(COSTS, FIXED, target, len(band) - 1, seed=3, exclude=[searched])
    assert searched not in first
    assert first == bq.sample_at_latency(COSTS, FIXED, target, len(band) - 1, seed=3, exclude=[searched])


def test_too_many_asked_is_an_error_not_a_short_list(bq):
    target = 7.0
    with pytest.raises(ValueError, match="widen the tolerance"):
        bq.sample_at_latency(COSTS, FIXED, target, len(_band(bq, target)) + 1, seed=0, max_draws=2000)


def test_choose_uniform_takes_nearest_non_base_uniform(bq):
    # all-b: 1 + 2 + 2 + 1.5 = 6.5; all-c: 1 + 1 + 0.5 + 1 = 3.5
    assert bq.choose_uniform(COSTS, FIXED, 6.0) == "b"
    assert bq.choose_uniform(COSTS, FIXED, 3.0) == "c"


def test_pareto_front_keeps_only_undominated_points(bq):
    points = [(1.0, 30.0), (2.0, 29.0), (2.0, 31.0), (3.0, 31.0), (4.0, 32.0)]
    assert bq.pareto(points) == [0, 2, 4]


def _write_cbm3d(work, image, psnr):
    path = work / "cbm3d" / "Kodak24" / "sigma25" / (Path(image).stem + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"dataset": "Kodak24", "sigma": "25", "seed": 0, "image": "{image}", '
                    f'"psnr": {psnr}, "ssim": 0.5, "seconds": 60.0}}\n')


def test_cbm3d_is_compared_on_exactly_the_images_it_finished(bq, tmp_path):
    import argparse

    _write_cbm3d(tmp_path, "a.png", 30.0)
    _write_cbm3d(tmp_path, "b.png", 32.0)
    per_image = tmp_path / "eval" / "net_per_image.csv"
    per_image.parent.mkdir(parents=True)
    per_image.write_text("dataset,sigma,seed,image,psnr,ssim\n"
                         "Kodak24,25,0,a.png,28,0.7\nKodak24,25,0,b.png,29,0.8\nKodak24,25,0,c.png,40,0.9\n")
    rows = [{"network": "net", "kind": "searched", "dataset": "Kodak24", "sigma": "25", "psnr": 32.33}]
    rows += bq.cbm3d_rows(tmp_path, argparse.Namespace(seed=0))
    bq.add_cbm3d_subset(tmp_path, rows, seed=0)
    cbm3d = rows[1]
    assert (cbm3d["kind"], cbm3d["images"], cbm3d["psnr"]) == ("cbm3d", 2, pytest.approx(31.0))
    assert rows[0]["psnr_cbm3d_images"] == pytest.approx(28.5)  # c.png, not done by CBM3D, is left out
