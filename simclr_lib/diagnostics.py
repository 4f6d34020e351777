"""Diagnostics of an embedding: alignment, uniformity, effective rank, retrieval.

Wang & Isola ("Understanding Contrastive Representation Learning through Alignment and
Uniformity on the Hypersphere", ICML 2020) show that the contrastive loss asymptotically
optimises two properties of the normalised embeddings: *alignment* (the two views of an
image land close together) and *uniformity* (the embeddings spread over the sphere).
The *effective rank* (Roy & Vetterli, "The effective rank: a measure of effective
dimensionality", EUSIPCO 2007) counts how many directions the features really use: a
collapsed representation has an effective rank near 1. These are cheap numbers to watch
while training, or to compare two checkpoints with.

All functions accept features of any scale: they normalise rows themselves where the
definition calls for it.

Introduced in notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_pairs(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError("z1 and z2 must both have shape (N, D) with the same N and D, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2) -> torch.Tensor:
    """Alignment loss of Wang & Isola 2020 (Eq. 4): ``mean_i ||z1_i - z2_i||^alpha``.

    Rows are L2-normalised first, so the value lies in [0, 2^alpha]: 0 when both views of
    every image map to the same point, 2^alpha when they are antipodal. Lower is better.

    Args:
        z1: (N, D) embeddings of the first views.
        z2: (N, D) embeddings of the second views; row ``i`` pairs with ``z1[i]``.
        alpha: exponent > 0 (2 in the paper).

    Returns:
        A scalar tensor (differentiable, so it can also be used as a loss).

    Example:
        >>> z = torch.randn(4, 8)
        >>> round(alignment(z, 3 * z).item(), 6)  # same direction: perfectly aligned
        0.0
    """
    _check_pairs(z1, z2)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    return (z1 - z2).norm(dim=1).pow(alpha).mean()


def uniformity(z: torch.Tensor, t: float = 2) -> torch.Tensor:
    """Uniformity loss of Wang & Isola 2020 (Eq. 5): ``log mean_{i<j} exp(-t ||z_i - z_j||^2)``.

    Rows are L2-normalised first. The value is at most 0 (all points equal: collapse) and
    decreases as the points spread over the sphere; ``-4t`` is the floor (every pair
    antipodal, reachable only by two points). Lower is better.

    Args:
        z: (N, D) embeddings, N >= 2.
        t: temperature > 0 of the Gaussian potential (2 in the paper).

    Returns:
        A scalar tensor (differentiable).

    Example:
        >>> uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), t=2).item()  # log(exp(-8))
        -8.0
    """
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be (N, D) with N >= 2, got {tuple(z.shape)}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    z = F.normalize(z.float(), dim=1)
    sq_dists = torch.pdist(z, p=2).pow(2)  # (N (N - 1) / 2,) one entry per pair i < j
    # log-mean-exp, stable even when every exp(-t d^2) is tiny
    return torch.logsumexp(-t * sq_dists, dim=0) - torch.log(
        torch.tensor(float(sq_dists.numel())))


def effective_rank(h: torch.Tensor, eps: float = 1e-12) -> float:
    """Effective rank (Roy & Vetterli 2007): ``exp(entropy(s / sum(s)))`` of the centred ``h``.

    ``s`` are the singular values of the mean-centred feature matrix; their normalised
    distribution has high entropy when variance is spread over many directions. Features
    spanning ``k`` orthogonal directions of equal variance give exactly ``k``; a collapsed
    representation (all variance in one direction) gives 1; all-equal rows give 0.

    Args:
        h: (N, D) features (not normalised: the scale of each direction matters).
        eps: singular values below ``eps * max`` count as zero.

    Returns:
        A float in [0, min(N, D)].

    Example:
        >>> effective_rank(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
        2.0
    """
    if h.dim() != 2:
        raise ValueError(f"h must be (N, D), got {tuple(h.shape)}")
    h = h.double()
    s = torch.linalg.svdvals(h - h.mean(0))  # (min(N, D),)
    if s.numel() == 0 or s.max() <= 0:
        return 0.0
    s = s[s > eps * s.max()]
    p = s / s.sum()
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def positive_pair_retrieval(z1: torch.Tensor, z2: torch.Tensor, chunk_size: int = 1024,
                            ) -> float:
    """Fraction of images whose first view retrieves its own second view.

    For each ``i``, the cosine nearest neighbour of ``z1[i]`` among all rows of ``z2`` is
    found; a hit is when it is ``z2[i]``. This is the instance-discrimination task the
    contrastive loss trains for, measured as accuracy (chance is 1/N).

    Args:
        z1: (N, D) embeddings of the first views.
        z2: (N, D) embeddings of the second views.
        chunk_size: rows of ``z1`` per similarity matrix.

    Returns:
        A float in [0, 1]; 1 for identical views (unless rows repeat).
    """
    _check_pairs(z1, z2)
    a, b = F.normalize(z1.float(), dim=1), F.normalize(z2.float().to(z1.device), dim=1)
    hits = 0
    for s in range(0, a.shape[0], chunk_size):
        nearest = (a[s:s + chunk_size] @ b.T).argmax(dim=1)  # (c,)
        hits += int((nearest == torch.arange(s, s + nearest.numel(), device=a.device)).sum())
    return hits / a.shape[0]


@torch.no_grad()
def nearest_neighbours(query_h: torch.Tensor, bank_h: torch.Tensor, k: int = 8,
                       chunk_size: int = 1024) -> torch.Tensor:
    """Indices of the ``k`` cosine-nearest rows of ``bank_h`` for each row of ``query_h``.

    Used for retrieval grids (:func:`simclr_lib.plots.plot_knn_grid`). When the queries are
    themselves in the bank, each query's first neighbour is itself.

    Args:
        query_h: (Q, D) features.
        bank_h: (N, D) features to search.
        k: neighbours per query, 1 <= k <= N.
        chunk_size: query rows per similarity matrix.

    Returns:
        (Q, k) int64 indices into ``bank_h``, most similar first.
    """
    if query_h.dim() != 2 or bank_h.dim() != 2 or query_h.shape[1] != bank_h.shape[1]:
        raise ValueError("query_h and bank_h must be (Q, D) and (N, D), got "
                         f"{tuple(query_h.shape)} and {tuple(bank_h.shape)}")
    if not 1 <= k <= bank_h.shape[0]:
        raise ValueError(f"k must be in 1..{bank_h.shape[0]} (the bank size), got {k}")
    q = F.normalize(query_h.float().to(bank_h.device), dim=1)
    b = F.normalize(bank_h.float(), dim=1)
    out = [(q[s:s + chunk_size] @ b.T).topk(k, dim=1).indices
           for s in range(0, q.shape[0], chunk_size)]
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.long)
