"""Checkpoints: loading one never runs code; RNG states survive the safe loader."""

import os
import pickle
import random

import numpy as np
import pytest
import torch

from simclr_lib.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    rng_states,
    set_rng_states,
)
from simclr_lib.cli import main


class _RunsAShellCommand:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious(path, marker, fmt):
    payload = {"encoder": _RunsAShellCommand(marker), "config": {}}
    if fmt == "torch.save":  # the zip format every .pt file has today
        torch.save(payload, path)
    else:  # a bare pickle, the legacy format torch.load also reads
        path.write_bytes(pickle.dumps(payload, protocol=2))


def test_the_malicious_file_really_runs_code_when_fully_unpickled(tmp_path):
    # Guards the test below: without weights_only, this file does execute its command.
    marker = tmp_path / "pwned"
    _malicious(tmp_path / "evil.pt", marker, "torch.save")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("fmt", ["torch.save", "pickle"])
def test_loading_a_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, fmt):
    marker = tmp_path / "pwned"
    _malicious(tmp_path / "evil.pt", marker, fmt)
    with pytest.raises(CheckpointError, match="refusing to load .*could run code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_eval_of_a_malicious_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    _malicious(tmp_path / "last.pt", marker, "torch.save")
    assert main(["eval", "--checkpoint", str(tmp_path / "last.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to load") and "\n" not in err
    assert not marker.exists()


def test_resume_from_a_malicious_checkpoint_exits_2(tmp_path, capsys):
    marker = tmp_path / "pwned"
    _malicious(tmp_path / "last.pt", marker, "torch.save")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()


def test_rng_states_round_trip_through_the_safe_loader(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    atomic_save({"rng": rng_states()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.standard_normal(), np.random.random(),
                torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.standard_normal(), np.random.random(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
