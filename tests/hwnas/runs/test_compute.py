import torch


def test_compute_on_the_cpu_is_float32_contiguous_and_sets_threads_only_when_asked():
    from hwnas.runs.compute import compute_for

    before = torch.get_num_threads()
    compute = compute_for("cpu")
    assert torch.get_num_threads() == before and compute.threads == before
    assert compute.autocast is None and not compute.channels_last and not compute.cuda
    try:
        assert compute_for("cpu", threads=1).threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    x = torch.zeros(1, 3, 4, 4)
    assert compute.tensor(x).is_contiguous()
