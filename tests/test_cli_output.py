"""Where `gpusim run` / `compare` write: an output folder that cannot be one is refused before the simulation, by
the option (-o) or the field (the scenario's name for out/<name>) that named it."""
import pytest

from gpusim.cli import main

SMALL = "name: {name}\ncluster: switch:gpus=4\njobs: [{{op: all_reduce, size: 1 MiB}}]\n"


def _scenario(tmp_path, name="small"):
    path = tmp_path / "s.yaml"
    path.write_text(SMALL.format(name=name))
    return str(path)


@pytest.mark.parametrize("target", ["a_file", "a_file/sub"])
def test_an_output_folder_that_is_a_file_is_refused_at_o(tmp_path, capsys, target):
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["run", _scenario(tmp_path), "-o", str(tmp_path / target), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "-o: cannot use" in err and "Traceback" not in err
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_a_name_too_long_for_a_folder_is_refused_at_name_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = []
    import gpusim.cli.run_cmd as run_cmd
    monkeypatch.setattr(run_cmd, "simulate", lambda s: ran.append(s))
    assert main(["run", _scenario(tmp_path, "x" * 300), "--no-figures"]) == 2
    assert "name: cannot use" in capsys.readouterr().err and not ran
