import threading

import pytest
import torch

from hwnas.runs.prefetch import Prefetcher


def make(key):
    g = torch.Generator().manual_seed(hash(key) % 2**31)
    return (torch.rand(2, 3, generator=g), torch.tensor([key[1]]))


KEYS = [("train", i) for i in range(20)]


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_prefetched_batches_equal_batches_made_on_demand(depth):
    with Prefetcher(make, KEYS, depth=depth) as loader:
        for key in KEYS:
            got, want = loader.get(key), make(key)
            assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_loop_that_asks_out_of_order_still_gets_the_right_batches():
    with Prefetcher(make, KEYS, depth=3) as loader:
        for key in KEYS[:3] + KEYS[7:10] + KEYS[5:6]:
            assert torch.equal(loader.get(key)[0], make(key)[0])


def test_an_error_in_the_loader_surfaces_in_the_caller_and_the_thread_stops():
    def broken(key):
        raise ValueError(f"bad {key}")

    with Prefetcher(broken, KEYS, depth=2) as loader:
        with pytest.raises(ValueError, match="bad"):
            loader.get(KEYS[0])
    assert not any(t.name == "hwnas-prefetch" and t.is_alive() for t in threading.enumerate())

