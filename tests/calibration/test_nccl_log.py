"""NCCL's INFO log as the source of the cost-model constants gpusim does not fit: the H200 transports' constants
are what NCCL logged on both machines, another machine's log replaces them in calibrate, and bad logs are errors
that name the file."""
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from gpusim.calibration import nccl_log, preset_file, transports
from gpusim.cli import main
from gpusim.errors import GpusimError

DATA = Path(__file__).resolve().parents[2] / "validation" / "data" / "h200"


@pytest.mark.parametrize("info", ["nccl_info.txt", "extra/x2/x2_nccl_info.txt"])
def test_the_h200_constants_are_what_nccl_logged(info):
    """Channels, point-to-point channels and chunk, and the ring graph of each transport (its section of collect.py's
    nccl_info.txt), on 2 and 4 ranks of the 4-GPU machine and on the 2-GPU one."""
    for name, transport in transports.TRANSPORTS.items():
        assert nccl_log.constants(DATA / info, name) == transport.logged, name


def test_a_log_of_several_transports_or_none_is_an_error(tmp_path):
    with pytest.raises(GpusimError, match="give the log of one transport") as e:
        nccl_log.constants(DATA / "nccl_info.txt")
    assert e.value.path.endswith("nccl_info.txt")
    empty = tmp_path / "empty.log"
    empty.write_text("NCCL INFO Bootstrap : Using lo\n")
    with pytest.raises(GpusimError, match="NCCL_DEBUG=INFO"):
        nccl_log.constants(empty)
    with pytest.raises(GpusimError, match="cannot read the NCCL log"):
        nccl_log.constants(tmp_path / "missing.log")


def test_calibrate_takes_another_machines_nccl_log(tmp_path):
    """A machine whose NCCL found 4 socket channels of a 3 GB/s ring graph: the preset carries them (the tuner then
    decides as that NCCL), and its provenance names the log."""
    text = (DATA / "nccl_info.txt").read_text()
    text = text.replace("2 coll channels, 2 collnet", "4 coll channels, 4 collnet")
    text = text.replace("nChannels 1, bw 1.200000/1.200000", "nChannels 4, bw 3.000000/3.000000")
    log = tmp_path / "other.log"
    log.write_text(text)
    out = tmp_path / "other.yaml"
    with redirect_stdout(io.StringIO()):
        rc = main(["calibrate", str(DATA / "collectives.csv"), "--transport", "socket", "--nccl-log", str(log),
                   "-o", str(out)])
    assert rc == 0
    p = preset_file.read(out)
    assert (p.model["channels"], p.model["graph_channels"], p.model["graph_bw_Bps"]) == (4, 4, 3e9)
    assert p.model["p2p_chunk_bytes"] == 128 * 1024 and p.provenance["nccl_log"] == str(log)
