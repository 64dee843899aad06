"""HSIC kernels and estimators against direct NumPy transcriptions of their formulas."""
import numpy as np
import pytest
import torch

from hsickit import HsickitError
from hsickit.core import hsic

RNG = np.random.default_rng(0)


def np_gauss(x, sigma, d_scale=1.0):
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma**2 * d_scale))


def np_H(m):
    return np.eye(m) - np.ones((m, m)) / m


def np_biased(K, L):
    m = len(K)
    H = np_H(m)
    return np.trace(K @ H @ L @ H) / (m - 1) ** 2


def np_unbiased(K, L):
    # Song et al. (2012), eq. (5)
    m = len(K)
    Kt, Lt = K * (1 - np.eye(m)), L * (1 - np.eye(m))
    one = np.ones(m)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((m - 1) * (m - 2))
            - 2 / (m - 2) * one @ Kt @ Lt @ one) / (m * (m - 3))


def np_nocco(K, L, eps=1e-5):
    m = len(K)
    H = np_H(m)
    Kc, Lc = H @ K @ H, H @ L @ H
    RK = Kc @ np.linalg.inv(Kc + eps * m * np.eye(m))
    RL = Lc @ np.linalg.inv(Lc + eps * m * np.eye(m))
    return np.trace(RK @ RL)


def np_cka(K, L):
    return np_biased(K, L) / np.sqrt(np_biased(K, K) * np_biased(L, L))


def t(a):
    return torch.tensor(a, dtype=torch.float64)


@pytest.fixture
def data():
    x = RNG.normal(size=(40, 6))
    y = np.sin(x[:, :2]) + 0.1 * RNG.normal(size=(40, 2))
    return x, y


def test_kernels_match_numpy(data):
    x, _ = data
    np.testing.assert_allclose(hsic.gaussian_kernel(t(x), 1.7).numpy(), np_gauss(x, 1.7), rtol=1e-10)
    np.testing.assert_allclose(hsic.gaussian_kernel(t(x), 1.7, "reference").numpy(), np_gauss(x, 1.7, d_scale=6), rtol=1e-10)
    np.testing.assert_allclose(hsic.linear_kernel(t(x)).numpy(), x @ x.T, rtol=1e-10)
    labels = np.array([0, 1, 1, 2, 0])
    np.testing.assert_array_equal(hsic.delta_kernel(torch.tensor(labels)).numpy(), (labels[:, None] == labels[None]).astype(float))
    K = np_gauss(x, 2.0)
    np.testing.assert_allclose(hsic.center(t(K)).numpy(), np_H(40) @ K @ np_H(40), atol=1e-12)


@pytest.mark.parametrize("name,ref", [("biased", np_biased), ("unbiased", np_unbiased), ("nocco", np_nocco), ("cka", np_cka)])
def test_estimators_match_numpy(data, name, ref):
    x, y = data
    K, L = np_gauss(x, 2.0), np_gauss(y, 1.0)
    got = hsic.ESTIMATORS[name](t(K), t(L)).item()
    assert got == pytest.approx(ref(K, L), rel=1e-7, abs=1e-12)


def test_estimators_are_batched_and_differentiable(data):
    x, y = data
    xs = torch.stack([t(x), t(x) * 2]).requires_grad_(True)
    K = hsic.gaussian_kernel(xs, 2.0)
    L = hsic.gaussian_kernel(t(y), 1.0).expand(2, 40, 40)
    for est in hsic.ESTIMATORS.values():
        v = est(K, L)
        assert v.shape == (2,)
        (g,) = torch.autograd.grad(v.sum(), xs, retain_graph=True)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        np.testing.assert_allclose(v[0].item(), est(K[0], L[0]).item(), rtol=1e-9)


def test_nocco_float32_agrees_with_float64():
    x = RNG.normal(size=(256, 64))
    y = RNG.integers(0, 10, 256)
    K64 = hsic.gaussian_kernel(t(x), 6.0, "reference")
    L64 = hsic.delta_kernel(torch.tensor(y)).double()
    v64 = hsic.nhsic_nocco(K64, L64).item()
    v32 = hsic.nhsic_nocco(K64.float(), L64.float()).item()
    assert abs(v32 - v64) / abs(v64) < 2e-3


def test_median_sigma_is_a_distance():
    x = torch.tensor(RNG.normal(size=(50, 3)))
    s = hsic.median_sigma(x)
    assert hsic.median_sigma(3.0 * x).item() == pytest.approx(3.0 * s.item(), rel=1e-9)
    d = torch.cdist(x, x)
    iu = torch.triu_indices(50, 50, 1)
    assert s.item() == pytest.approx(d[iu[0], iu[1]].median().item(), rel=1e-9)
    # reference convention: 2 sigma^2 d equals twice the squared median distance
    assert hsic.median_sigma(x, "reference").item() ** 2 * 3 == pytest.approx(s.item() ** 2, rel=1e-9)


def test_float32_far_from_origin_stays_positive_semidefinite():
    x = torch.tensor(RNG.normal(size=(128, 4)) + 1e4, dtype=torch.float32)
    K = hsic.gaussian_kernel(x, hsic.median_sigma(x))
    assert torch.linalg.eigvalsh(hsic.center(K).double()).min() > -1e-3
    assert torch.isfinite(hsic.nhsic_nocco(K, K))


def test_sigma_must_be_positive(data):
    with pytest.raises(HsickitError, match="sigma"):
        hsic.gaussian_kernel(t(data[0]), 0.0)
    with pytest.raises(HsickitError, match="convention"):
        hsic.gaussian_kernel(t(data[0]), 1.0, "bogus")


@pytest.mark.parametrize("name", ["biased", "cka", "nocco"])
def test_independent_samples_fall_inside_the_permutation_null(name):
    est = hsic.ESTIMATORS[name]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
    K, L = hsic.gaussian_kernel(t(x), 1.0), hsic.gaussian_kernel(t(y), 1.0)
    observed = est(K, L).item()
    null = [est(K, L[p][:, p]).item() for p in (rng.permutation(60) for _ in range(200))]
    p_value = (np.sum(np.array(null) >= observed) + 1) / 201
    assert p_value > 0.01
    # and a dependent pair is far out in the same null's tail
    L_dep = hsic.gaussian_kernel(t(x ** 2), 1.0)
    dep = est(K, L_dep).item()
    null_dep = [est(K, L_dep[p][:, p]).item() for p in (rng.permutation(60) for _ in range(200))]
    assert dep > max(null_dep)


def test_gaussian_hsic_is_invariant_to_orthogonal_transforms(data):
    x, y = data
    Q, _ = np.linalg.qr(RNG.normal(size=(6, 6)))
    L = hsic.gaussian_kernel(t(y), 1.0)
    for est in hsic.ESTIMATORS.values():
        a = est(hsic.gaussian_kernel(t(x), 2.0), L).item()
        b = est(hsic.gaussian_kernel(t(x @ Q), 2.0), L).item()
        assert b == pytest.approx(a, rel=1e-8)


def test_linear_cka_is_invariant_to_scaling(data):
    x, y = data
    L = hsic.linear_kernel(t(y))
    a = hsic.cka(hsic.linear_kernel(t(x)), L).item()
    assert hsic.cka(hsic.linear_kernel(t(17.0 * x)), L).item() == pytest.approx(a, rel=1e-10)
    assert hsic.cka(hsic.linear_kernel(t(x)), hsic.linear_kernel(t(0.01 * y))).item() == pytest.approx(a, rel=1e-10)


def test_unbiased_estimator_mean_over_draws():
    rng = np.random.default_rng(2)

    def draw(m, dependent):
        x = rng.normal(size=(m, 1))
        y = x + rng.normal(size=(m, 1)) if dependent else rng.normal(size=(m, 1))
        return hsic.gaussian_kernel(t(x), 1.0), hsic.gaussian_kernel(t(y), 1.0)

    # independent: the unbiased estimator averages to 0, the biased one does not
    ub = np.array([hsic.hsic_unbiased(*draw(12, False)).item() for _ in range(400)])
    bi = np.array([hsic.hsic_biased(*draw(12, False)).item() for _ in range(400)])
    assert abs(ub.mean()) < 3 * ub.std() / np.sqrt(len(ub))
    assert bi.mean() > 5 * bi.std() / np.sqrt(len(bi))
    # dependent: small-sample unbiased estimates average to the large-sample value
    small = np.array([hsic.hsic_unbiased(*draw(12, True)).item() for _ in range(600)])
    large = hsic.hsic_unbiased(*draw(3000, True)).item()
    assert abs(small.mean() - large) < 3 * small.std() / np.sqrt(len(small)) + 2e-3


def test_unbiased_needs_four_samples():
    K = torch.eye(3)
    with pytest.raises(HsickitError, match="at least 4"):
        hsic.hsic_unbiased(K, K)
