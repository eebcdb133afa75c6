from hwnas.nas.commitment import argmax_at, commitment


def alphas(*largest):
    return {f"p{i}": {"a": v, "b": 1 - v} for i, v in enumerate(largest)}


def test_a_decisive_search_is_committed():
    trail = [(1, ["a", "b"]), (10, ["a", "a"])]
    report = commitment(alphas(0.99, 0.97), 0.05, trail, arch_steps=100)
    assert report["committed"] and report["argmax_changed_last_quarter"] == 0
    assert report["verdict"].startswith("committed")


def test_a_near_uniform_search_says_so():
    report = commitment(alphas(0.3, 0.9), 0.95, [(1, ["a", "a"])], arch_steps=100)
    assert not report["committed"] and report["undecided_positions"] == ["p0"]
    assert report["verdict"].startswith("NOT committed") and "run longer" in report["verdict"]


def test_entropy_above_the_threshold_is_not_committed_even_when_every_alpha_passes():
    assert not commitment(alphas(0.85, 0.85), 0.4, [], arch_steps=10)["committed"]


def test_late_argmax_changes_are_counted_from_the_trail():
    trail = [(1, ["a", "a", "a"]), (50, ["b", "a", "a"]), (80, ["b", "b", "a"]), (95, ["b", "b", "b"])]
    report = commitment(alphas(0.99, 0.99, 0.99), 0.01, trail, arch_steps=100)
    assert argmax_at(trail, 75) == ["b", "a", "a"]
    assert report["argmax_changed_last_quarter"] == 2 and report["argmax_flips_last_quarter"] == 2
    assert "2 position(s) changed" in report["verdict"]
