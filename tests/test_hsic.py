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


# --- approximate HSIC: explicit feature maps ---------------------------------------------------

@pytest.mark.parametrize("name", ["biased", "unbiased", "cka", "nocco"])
def test_feature_estimators_equal_the_exact_ones_for_exact_features(data, name):
    # the linear kernel's feature map is x itself: the O(m D^2) forms must agree to rounding
    x, y = data
    exact = hsic.ESTIMATORS[name](hsic.linear_kernel(t(x)), hsic.linear_kernel(t(y))).item()
    assert hsic.FEATURE_ESTIMATORS[name](t(x), t(y)).item() == pytest.approx(exact, rel=1e-9)
    # label features are the delta kernel's exact feature map
    labels = torch.tensor(RNG.integers(0, 4, 40))
    exact = hsic.ESTIMATORS[name](hsic.linear_kernel(t(x)), hsic.delta_kernel(labels).double()).item()
    got = hsic.FEATURE_ESTIMATORS[name](t(x), hsic.label_features(labels, dtype=torch.float64)).item()
    assert got == pytest.approx(exact, rel=1e-9)


def test_label_features_reproduce_the_delta_kernel():
    labels = torch.tensor([0, 2, 2, 1, 0])
    phi = hsic.label_features(labels)
    torch.testing.assert_close(phi @ phi.T, hsic.delta_kernel(labels))
    assert hsic.label_features(labels, n_classes=5).shape == (5, 5)


@pytest.mark.parametrize("convention", ["plain", "reference"])
@pytest.mark.parametrize("orthogonal", [False, True])
def test_random_fourier_features_approximate_the_gaussian_kernel(convention, orthogonal):
    x = t(RNG.normal(size=(300, 4)) + 50.0)  # far from the origin: the features centre x first
    K = hsic.gaussian_kernel(x, 1.5, convention)
    phi = hsic.random_fourier_features(x, 1.5, 4000, convention, random_state=0, orthogonal=orthogonal)
    assert phi.shape == (300, 4000)
    np.testing.assert_allclose(torch.diagonal(phi @ phi.T).numpy(), 1.0, rtol=1e-12)
    err = (phi @ phi.T - K).abs()
    assert err.mean() < 0.02 and err.max() < 0.12  # entry-wise error ~ 1/sqrt(D)
    # unbiased: the average of 16 independent draws is much closer than single draws
    def gram(seed):
        p = hsic.random_fourier_features(x, 1.5, 4000, convention, random_state=seed, orthogonal=orthogonal)
        return p @ p.T
    single = np.mean([(gram(s) - K).abs().mean().item() for s in range(4)])
    averaged = (torch.stack([gram(s) for s in range(4, 20)]).mean(0) - K).abs().mean().item()
    assert averaged < 0.5 * single


def test_orthogonal_frequencies_are_orthogonal_within_a_block():
    w = hsic.rff_frequencies(8, 12, orthogonal=True, random_state=0, dtype=torch.float64)
    gram = w[:8] @ w[:8].T
    np.testing.assert_allclose(gram.numpy() - np.diag(np.diag(gram.numpy())), 0.0, atol=1e-10)
    assert w.shape == (12, 8)
    # each row is still N(0, I): squared lengths are chi^2_8, mean 8
    lengths = hsic.rff_frequencies(8, 8000, orthogonal=True, random_state=1, dtype=torch.float64).pow(2).sum(1)
    assert lengths.mean().item() == pytest.approx(8.0, rel=0.05)


def rff_pair(seed, m=400, D=2000, orthogonal=True):
    rng = np.random.default_rng(seed)
    x = t(rng.normal(size=(m, 5)))
    y = torch.sin(x[:, :2]) + 0.3 * t(rng.normal(size=(m, 2)))
    K, L = hsic.gaussian_kernel(x, 2.0), hsic.gaussian_kernel(y, 1.0)
    px = hsic.random_fourier_features(x, 2.0, D, random_state=2 * seed, orthogonal=orthogonal)
    py = hsic.random_fourier_features(y, 1.0, D, random_state=2 * seed + 1, orthogonal=orthogonal)
    return K, L, px, py


@pytest.mark.parametrize("seed", range(3))
def test_random_feature_hsic_agrees_with_the_exact_estimator(seed):
    """Stated tolerance: m = 400, D = 2,000 features, 5-d data: HSIC within 8 %, CKA within 6 %.

    (Measured over 10 draws: at most 3.6 % for biased/unbiased HSIC with orthogonal
    frequencies, 3.8 % for debiased CKA with i.i.d. ones; NOCCO is biased low, see below.)
    """
    K, L, px, py = rff_pair(seed)
    for name in ("biased", "unbiased"):
        exact = hsic.ESTIMATORS[name](K, L).item()
        assert hsic.FEATURE_ESTIMATORS[name](px, py).item() == pytest.approx(exact, rel=0.08), name
    K, L, px, py = rff_pair(seed, orthogonal=False)
    assert hsic.cka_features(px, py, debias=True).item() == pytest.approx(hsic.cka(K, L).item(), rel=0.06)


def test_cka_debiasing_removes_the_self_similarity_bias():
    # from D i.i.d. features, HSIC(K, K) is biased up by its same-frequency terms, so CKA is biased down
    rng = np.random.default_rng(0)
    x = t(rng.normal(size=(200, 10)))
    labels = torch.tensor((x[:, 0] + x[:, 1] ** 2 > 1).long().numpy() + (x[:, 2] > 0).long().numpy())
    s = hsic.median_sigma(x)
    exact = hsic.cka(hsic.gaussian_kernel(x, s), hsic.delta_kernel(labels).double()).item()
    py = hsic.label_features(labels, dtype=torch.float64)  # exact features: not debiased
    naive, debiased = [], []
    for seed in range(20):
        px = hsic.random_fourier_features(x, s, 100, random_state=seed)
        naive.append(hsic.cka_features(px, py).item())
        debiased.append(hsic.cka_features(px, py, debias=(True, False)).item())
    naive_err, debiased_err = np.mean(naive) / exact - 1, np.mean(debiased) / exact - 1
    assert naive_err < -0.04 and abs(debiased_err) < abs(naive_err) / 2


def test_random_feature_nocco_is_rank_limited():
    # NOCCO with eps m regularisation counts (soft) shared directions: D features give a
    # rank <= D operator, so it underestimates unless D exceeds the kernel's effective rank
    K, L, px, py = rff_pair(0)
    exact = hsic.nhsic_nocco(K, L).item()
    approx = hsic.nhsic_nocco_features(px, py).item()
    assert 0.6 * exact < approx < exact
    u = hsic.nocco_features(px)
    torch.testing.assert_close(u @ u.T, hsic.nocco_operator(px @ px.T), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", ["biased", "unbiased", "cka", "nocco"])
def test_random_feature_estimators_are_differentiable(name):
    x = t(RNG.normal(size=(64, 3))).requires_grad_(True)
    y = torch.tensor(RNG.integers(0, 3, 64))
    phi = hsic.random_fourier_features(x, 1.0, 256, random_state=0)
    value = hsic.FEATURE_ESTIMATORS[name](phi, hsic.label_features(y, dtype=torch.float64))
    (g,) = torch.autograd.grad(value, x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # and the gradient is the exact estimator's on the kernel Phi Phi^T
    xe = x.detach().clone().requires_grad_(True)
    phie = hsic.random_fourier_features(xe, 1.0, 256, random_state=0)
    exact = hsic.ESTIMATORS[name](phie @ phie.T, hsic.delta_kernel(y).double())
    (ge,) = torch.autograd.grad(exact, xe)
    torch.testing.assert_close(g, ge, rtol=1e-6, atol=1e-9)


def test_random_features_are_seeded():
    x = torch.randn(50, 3)
    a = hsic.random_fourier_features(x, 1.0, 64, random_state=3)
    torch.testing.assert_close(hsic.random_fourier_features(x, 1.0, 64, random_state=3), a, rtol=0, atol=0)
    assert not torch.allclose(hsic.random_fourier_features(x, 1.0, 64, random_state=4), a)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    first = hsic.random_fourier_features(x, 1.0, 64, random_state=g1, orthogonal=True)
    torch.testing.assert_close(hsic.random_fourier_features(x, 1.0, 64, random_state=g2, orthogonal=True), first, rtol=0, atol=0)
    # a generator advances: the next draw differs
    assert not torch.allclose(hsic.random_fourier_features(x, 1.0, 64, random_state=g1, orthogonal=True), first)


def test_random_feature_arguments_are_checked():
    x = torch.randn(10, 2)
    with pytest.raises(HsickitError, match="even number"):
        hsic.random_fourier_features(x, 1.0, 33)
    with pytest.raises(HsickitError, match="sigma"):
        hsic.random_fourier_features(x, -1.0, 32)
    with pytest.raises(HsickitError, match="convention"):
        hsic.random_fourier_features(x, 1.0, 32, "bogus")


def test_nocco_operator_errors_clearly_on_a_kernel_that_is_not_psd():
    rng = np.random.default_rng(3)
    m = 64
    V, _ = np.linalg.qr(rng.normal(size=(m, m)))
    w = np.abs(rng.normal(size=m))
    w[0] = -1.0  # far below -eps*m: no precision rescues it (float32 retries in float64, then stops)
    bad = torch.tensor((V * w) @ V.T, dtype=torch.float32)
    with pytest.raises(HsickitError, match="positive semi-definite"):
        hsic.nocco_operator(bad)
    x = torch.tensor(rng.normal(size=(m, 3)), dtype=torch.float32)
    R = hsic.nocco_operator(hsic.gaussian_kernel(x, 1.0))
    assert R.dtype == torch.float32 and torch.isfinite(R).all()
