"""Units are parsed once at the edge; unknown or missing units are errors naming the field."""
import pytest

from gpusim import units
from gpusim.errors import GpusimError


@pytest.mark.parametrize("text,expected", [
    ("4 GiB", 4 * 1024**3), ("4GB", 4e9), ("512 KiB", 512 * 1024), ("1.5 kB", 1500), ("8 B", 8), ("2 TiB", 2 * 1024**4),
])
def test_sizes(text, expected):
    assert units.size(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("400 GB/s", 400e9), ("100 Gb/s", 12.5e9), ("100Gbps", 12.5e9), ("1 Tb/s", 125e9), ("2 GiB/s", 2 * 1024**3),
])
def test_bandwidths(text, expected):
    assert units.bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,expected", [("1.5 us", 1.5e-6), ("1.5 µs", 1.5e-6), ("500ns", 5e-7), ("2 ms", 2e-3), ("3 s", 3.0)])
def test_times(text, expected):
    assert units.time(text) == pytest.approx(expected)


def test_lengths():
    assert units.length("1550 nm") == pytest.approx(1.55e-6)
    assert units.length("2 km") == 2000.0


@pytest.mark.parametrize("call,value", [(units.size, "4 GX"), (units.bandwidth, "400 GB"), (units.time, "3 parsecs")])
def test_unknown_unit_names_field(call, value):
    with pytest.raises(GpusimError, match=r"^jobs\[0\]\.size: unknown"):
        call(value, "jobs[0].size")


def test_missing_unit_is_an_error_unless_a_default_is_documented():
    with pytest.raises(GpusimError, match="missing unit"):
        units.bandwidth(400, "cluster.bandwidth")
    assert units.size(4096, "size", default_unit="B") == 4096


def test_negative_and_nan_rejected():
    with pytest.raises(GpusimError, match="non-negative"):
        units.size("-2 GB", "x")
    with pytest.raises(GpusimError):
        units.time("nan s", "x")


@pytest.mark.parametrize("text", ["0.5", "0.5 B", "1e-300", "1.5 B", "0.0001 KiB"])
def test_sizes_are_whole_bytes(text):
    """A 0.5-byte sweep point printed a 0-byte row with infinite bandwidth."""
    with pytest.raises(GpusimError, match=r"^--min-bytes: expected a whole number of bytes"):
        units.size(text, "--min-bytes", default_unit="B")


def test_decimal_sizes_that_floats_miss_by_a_hair_are_whole():
    assert units.size("1.1 KB") == 1100 and units.size("3.3 MB") == 3_300_000 and units.size("0 B") == 0


def test_a_buffer_size_is_at_most_one_pebibyte():
    assert units.size("1 PiB", "x", units.MAX_SIZE_BYTES) == 2**50
    with pytest.raises(GpusimError, match=r"^x: expected a size of at most 1 PiB"):
        units.size("1e30 B", "x", units.MAX_SIZE_BYTES)
