"""Checkpoints that survive a dying session and cannot run code: atomic writes, safe loads.

A checkpoint is one ``torch.save`` dictionary. It is written to a temporary file in the
same directory, flushed and ``fsync``-ed, then renamed over the old file, so a crash at any
moment leaves either the old or the new checkpoint, never a truncated one.

A ``.pt`` file is a pickle, and unpickling can call any Python function the file names: a
checkpoint from someone else could run a shell command the moment it is loaded. Ours hold
only tensors and plain values (numbers, strings, lists, dicts, tuples), so they are always
read with ``torch.load(..., weights_only=True)``, which refuses everything else.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig, config_from_dict
from .models import encoder_from_config

FORMAT_VERSION = 2  # 2: loadable with weights_only=True (no NumPy objects inside)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or not a simclr_lib checkpoint."""


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temporary file, fsync, rename).

    Args:
        obj: anything ``torch.save`` accepts.
        path: destination; its directory must exist.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some filesystems (and Windows) cannot fsync a directory
        pass


def rng_states() -> dict:
    """Every global random state: Python, NumPy (when installed), torch CPU and CUDA.

    Only tensors and plain values, so that the result loads with ``weights_only=True``.
    """
    states = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        states["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                           "pos": int(pos), "has_gauss": int(has_gauss),
                           "gauss": float(gauss)}
    except ImportError:  # pragma: no cover - numpy ships with torch's usual installs
        pass
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`rng_states` captured (CUDA states only where CUDA is present)."""
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "numpy" in states:
        import numpy as np

        n = states["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        cuda = states["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run directory of ``path``: itself when it is a directory, else its parent."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by training, with a clear error when that is impossible.

    Args:
        path: a ``.pt`` file, or a run directory (then ``last.pt`` inside it).
        map_location: where tensors are loaded.

    Loading never runs code: the file is read with ``torch.load(weights_only=True)``, which
    accepts tensors and plain values only. A file that names any other Python object (a
    class, a function: what a malicious pickle needs) is refused before anything in it runs.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, not ours, or holds
            Python objects other than tensors and plain values.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; pass a run directory that holds last.pt "
            f"(written by `python -m simclr_lib train --out DIR`)")
    try:
        with warnings.catch_warnings():  # a damaged file makes torch warn before it fails;
            warnings.simplefilter("ignore", UserWarning)  # our one-line error says it all
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects other than tensors and "
            f"plain values ({first}), and unpickling them could run code. Checkpoints "
            f"written by simclr_lib's training hold none; checkpoints of simclr_lib 0.1 "
            f"(format 1) must be re-trained") from None
    except Exception as e:  # noqa: BLE001 - any failure to read means the same to the user
        raise CheckpointError(f"could not read checkpoint {path} ({type(e).__name__}: {e}); "
                              f"it may be truncated or corrupt") from e
    if not isinstance(ckpt, dict) or "encoder" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a simclr_lib checkpoint (no encoder/config)")
    return ckpt


def load_encoder(path: str | os.PathLike,
                 map_location: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The trained encoder ``f`` (in eval mode) and the config of its run.

    Example:
        >>> f, cfg = load_encoder("runs/cpu/best.pt")  # doctest: +SKIP
        >>> h = f(x)                                   # (B, f.feature_dim)
    """
    ckpt = load_checkpoint(path, map_location)
    cfg = config_from_dict(ckpt["config"])
    encoder = encoder_from_config(cfg)
    encoder.load_state_dict(ckpt["encoder"])
    return encoder.eval(), cfg
