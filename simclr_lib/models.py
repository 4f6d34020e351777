"""The encoder ``f``, the projection head ``g`` and the SimCLR model ``(h, z)``.

SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, Section 2.1) maps each augmented view ``x`` to a
representation ``h = f(x)`` with a base encoder (a ResNet in the paper) and then to
``z = g(h)`` with a small MLP, the projection head. The contrastive loss is computed
on ``z``; ``h`` is what is kept for downstream tasks, because the head learns to throw
away information (colour, orientation) that the loss asks it to be invariant to
(Section 4.2 of the paper).

Introduced in notebooks/02_encoder_and_projection_head.ipynb.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from .config import TrainConfig

ENCODERS = ("small_cnn", "resnet18", "resnet34", "resnet50")


class SmallCNN(nn.Module):
    """A small convolutional encoder that trains in minutes on a laptop CPU.

    Four conv-BN-ReLU stages (each halving the resolution after the first) and a global
    average pool. With ``width=32`` it has about 0.3 M parameters and ``feature_dim=256``.

    Args:
        width: channels of the first stage; later stages use 2x, 4x, 8x.

    Example:
        >>> f = SmallCNN()
        >>> f(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 256])
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1,
                          bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, feature_dim)."""
        return self.pool(self.features(x)).flatten(1)


def _resnet(name: str, small_images: bool) -> nn.Module:
    """A torchvision ResNet, randomly initialised, with ``fc`` replaced by identity."""
    net = getattr(torchvision.models, name)(weights=None)
    if small_images:
        # CIFAR stem (SimCLR Appendix B.9): 3x3 conv, stride 1, no max-pool, so a 32x32
        # image is not reduced to 8x8 before the first residual stage.
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    net.feature_dim = net.fc.in_features  # 512 for resnet18/34, 2048 for resnet50
    net.fc = nn.Identity()
    return net


def build_encoder(name: str = "resnet18", small_images: bool = True, **kwargs) -> nn.Module:
    """Build the base encoder ``f``, randomly initialised, without a classification layer.

    Args:
        name: one of ``small_cnn``, ``resnet18``, ``resnet34``, ``resnet50``.
        small_images: for ResNets, use the small-image stem (3x3 stride-1 conv, no
            max-pool) recommended for 32x32 inputs such as CIFAR-10. Ignored for
            ``small_cnn``.
        **kwargs: passed to :class:`SmallCNN` (e.g. ``width``).

    Returns:
        A module mapping ``(B, 3, H, W)`` images to ``(B, feature_dim)`` features ``h``;
        the attribute ``feature_dim`` gives the width of ``h``.

    Raises:
        ValueError: for an unknown encoder name.

    Example:
        >>> f = build_encoder("resnet18", small_images=True)
        >>> f.feature_dim
        512
    """
    if name == "small_cnn":
        return SmallCNN(**kwargs)
    if name in ENCODERS:
        if kwargs:
            raise ValueError(f"unexpected options for {name}: {sorted(kwargs)}")
        return _resnet(name, small_images)
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")


class ProjectionHead(nn.Module):
    """The projection head ``g``: an MLP from ``h`` to the space where the loss is applied.

    SimCLR v1 uses two layers (``Linear -> ReLU -> Linear``, Chen et al. 2020, Section 2.1);
    SimCLR v2 uses three (Chen et al., "Big Self-Supervised Models are Strong
    Semi-Supervised Learners", 2020). Hidden layers carry BatchNorm when ``batch_norm``.
    One layer is the *linear* projection and zero layers *no* projection (``z = h``), the
    other two heads of the paper's Figure 8 (Section 4.2; notebooks/06_experiments.ipynb).

    Args:
        in_dim: width of ``h`` (the encoder's ``feature_dim``).
        hidden_dim: width of the hidden layers (the paper uses ``in_dim``).
        out_dim: width of ``z`` (128 in the paper); with ``num_layers=0`` it is ``in_dim``
            whatever is passed.
        num_layers: number of linear layers; 0 is the identity.
        batch_norm: BatchNorm after each hidden linear layer.

    Example:
        >>> g = ProjectionHead(512, 512, 128)
        >>> g(torch.rand(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128,
                 num_layers: int = 2, batch_norm: bool = True) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0 (0: no projection, z = h), got "
                             f"{num_layers}")
        hidden_dim = hidden_dim or in_dim
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        if num_layers == 0:
            out_dim = in_dim  # no projection: z = h
        else:
            layers.append(nn.Linear(dim, out_dim))
        self.net = nn.Sequential(*layers)  # empty: the identity
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        return self.net(h)


class SimCLR(nn.Module):
    """Encoder ``f`` followed by projection head ``g``.

    Args:
        encoder: ``f``, with a ``feature_dim`` attribute (see :func:`build_encoder`).
        head: ``g``; defaults to a 2-layer :class:`ProjectionHead` with hidden width
            ``feature_dim`` and output 128.

    Example:
        >>> model = SimCLR(build_encoder("small_cnn"))
        >>> h, z = model(torch.rand(4, 3, 32, 32))
        >>> h.shape, z.shape
        (torch.Size([4, 256]), torch.Size([4, 128]))
    """

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head if head is not None else ProjectionHead(encoder.feature_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(h, z)``: ``h = f(x)`` of shape (B, feature_dim), ``z = g(h)`` (B, out_dim)."""
        h = self.encoder(x)
        z = self.head(h)
        return h, z


def encoder_from_config(cfg: TrainConfig) -> nn.Module:
    """A fresh encoder ``f`` with the architecture that ``cfg`` describes."""
    kwargs = {"width": cfg.encoder_width} if cfg.encoder == "small_cnn" and cfg.encoder_width \
        else {}
    return build_encoder(cfg.encoder, small_images=cfg.small_images, **kwargs)


def build_model(cfg: TrainConfig) -> SimCLR:
    """The SimCLR model ``(f, g)`` that ``cfg`` describes (random initialisation).

    Example:
        >>> model = build_model(TrainConfig(encoder="small_cnn", encoder_width=8))
        >>> model.encoder.feature_dim, model.head.out_dim
        (64, 128)
    """
    f = encoder_from_config(cfg)
    g = ProjectionHead(f.feature_dim, cfg.head_hidden_dim, cfg.proj_dim, cfg.head_layers)
    return SimCLR(f, g)
