"""NT-Xent against an independent loop transcription of the paper's Algorithm 1."""

import math

import numpy as np
import pytest
import torch

from simclr_lib.loss import NTXentLoss, nt_xent, similarity_logits


def algorithm1_reference(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """SimCLR Algorithm 1 (Chen et al. 2020), written as loops in float64 NumPy.

    z_{2k-1} and z_{2k} are the two views of image k (here: z1[k], z2[k]).
    """
    n = z1.shape[0]
    z = []
    for k in range(n):  # interleave as in the paper: 2k-1, 2k
        z.append(z1[k])
        z.append(z2[k])

    def sim(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    def ell(i, j):
        num = math.exp(sim(z[i], z[j]) / tau)
        den = sum(math.exp(sim(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        return -math.log(num / den)

    total = 0.0
    for k in range(n):
        total += ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k)
    return total / (2 * n)


@pytest.mark.parametrize("n", [2, 3, 8, 17])
@pytest.mark.parametrize("dim", [1, 4, 32])
@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5, 1.0, 2.0])
def test_matches_algorithm1_loop(n, dim, tau):
    g = torch.Generator().manual_seed(n * 1000 + dim)
    z1 = torch.randn(n, dim, generator=g, dtype=torch.float64)
    z2 = torch.randn(n, dim, generator=g, dtype=torch.float64)
    expected = algorithm1_reference(z1.numpy(), z2.numpy(), tau)
    got = nt_xent(z1, z2, temperature=tau)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    got32 = nt_xent(z1.float(), z2.float(), temperature=tau)
    assert got32.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("n", [2, 5, 64])
def test_all_equal_embeddings_give_log_2n_minus_1(n):
    z = torch.ones(n, 7) * 3.0
    loss = nt_xent(z, z.clone(), temperature=0.3)
    assert loss.item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)


def test_symmetric_in_the_two_views():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(10, 16, generator=g), torch.randn(10, 16, generator=g)
    torch.testing.assert_close(nt_xent(z1, z2, 0.2), nt_xent(z2, z1, 0.2))


def test_invariant_to_scale_of_inputs():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    torch.testing.assert_close(nt_xent(z1, z2, 0.5), nt_xent(5 * z1, 0.1 * z2, 0.5))


def test_perfect_alignment_beats_random():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(16, 32, generator=g)
    assert nt_xent(z, z.clone(), 0.1) < nt_xent(z, torch.randn(16, 32, generator=g), 0.1)
    # orthogonal, perfectly aligned pairs at low temperature: loss near zero
    eye = torch.eye(8)
    assert nt_xent(eye, eye.clone(), 0.01).item() < 1e-6


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.5), (z1, z2))


def test_logits_and_labels_form():
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    logits, labels = similarity_logits(z1, z2, temperature=0.5)
    assert logits.shape == (6, 6)
    assert torch.isinf(logits.diagonal()).all() and (logits.diagonal() < 0).all()
    assert labels.tolist() == [3, 4, 5, 0, 1, 2]
    # the positive logit is cos(z1[k], z2[k]) / tau
    cos = torch.nn.functional.cosine_similarity(z1, z2)
    torch.testing.assert_close(logits[torch.arange(3), labels[:3]], cos / 0.5)


def test_stable_in_low_precision_and_large_logits():
    z = torch.randn(32, 64)
    loss = nt_xent(z.bfloat16(), z.bfloat16() + 0.01, temperature=0.01)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nt_xent(z, z, temperature=0.001)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("tau", [0, -0.1])
def test_rejects_nonpositive_temperature(tau):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=tau)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        NTXentLoss(tau)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same N and D"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="same N and D"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        nt_xent(torch.randn(4), torch.randn(4))


def test_rejects_single_pair():
    with pytest.raises(ValueError, match="at least 2 pairs"):
        nt_xent(torch.randn(1, 3), torch.randn(1, 3))


def test_module_matches_function():
    z1, z2 = torch.randn(5, 6), torch.randn(5, 6)
    torch.testing.assert_close(NTXentLoss(0.3)(z1, z2), nt_xent(z1, z2, 0.3))
    assert "0.3" in repr(NTXentLoss(0.3))
