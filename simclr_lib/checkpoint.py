"""Checkpoints that survive a dying session: atomic writes, every RNG state, exact resume.

A checkpoint is one ``torch.save`` dictionary. It is written to a temporary file in the
same directory, flushed and ``fsync``-ed, then renamed over the old file, so a crash at any
moment leaves either the old or the new checkpoint, never a truncated one.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig, config_from_dict
from .models import build_encoder

FORMAT_VERSION = 1


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
    """Every global random state: Python, NumPy (when installed), torch CPU and CUDA."""
    states = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        states["numpy"] = np.random.get_state()
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

        np.random.set_state(states["numpy"])
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

    Raises:
        CheckpointError: the file is missing, unreadable, truncated or not ours.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; pass a run directory that holds last.pt "
            f"(written by `python -m simclr_lib train --out DIR`)")
    try:
        # Our checkpoints hold RNG states and plain Python objects, so the full unpickler is
        # needed; only load checkpoints you created yourself.
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure to read means the same to the user
        raise CheckpointError(f"could not read checkpoint {path} ({type(e).__name__}: {e}); "
                              f"it may be truncated or corrupt") from e
    if not isinstance(ckpt, dict) or "encoder" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a simclr_lib checkpoint (no encoder/config)")
    return ckpt


def encoder_from_config(cfg: TrainConfig) -> nn.Module:
    """A fresh encoder ``f`` with the architecture that ``cfg`` describes."""
    kwargs = {"width": cfg.encoder_width} if cfg.encoder == "small_cnn" and cfg.encoder_width \
        else {}
    return build_encoder(cfg.encoder, small_images=cfg.small_images, **kwargs)


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
