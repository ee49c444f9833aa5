"""The collective size ladder (nccl-tests' -b/-e/-f)."""
from gpusim.collectives.sweep import sizes


def test_a_factor_below_two_repeats_no_size():
    """From 1 B by 1.5 the rounded ladder would read 1, 2, 2, 3, 5, 8 ...: each size is simulated once."""
    got = sizes(1, 100, 1.5)
    assert got == sorted(set(got)) and got[:4] == [1, 2, 3, 5]
    assert sizes(8, 1024, 2) == [8 * 2**k for k in range(8)]
