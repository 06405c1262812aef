"""Analytic targets: closed-form gradients, exact log partitions, exact samplers, bad input."""

import math

import pytest
import torch

from torchenergy.energies import (
    AckleyEnergy,
    DoubleWellEnergy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    HarmonicEnergy,
    RastriginEnergy,
    RosenbrockEnergy,
    energy_and_grad,
)

D64 = torch.float64
Z = 4.0  # z for MCSE tolerances


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _corr_gauss(d=2, dtype=D64):
    g = _gen(11)
    a = torch.randn(d, d, generator=g, dtype=dtype)
    cov = a @ a.T + 0.5 * torch.eye(d, dtype=dtype)
    mean = torch.randn(d, generator=g, dtype=dtype)
    return mean, cov


def _mixture(dtype=D64):
    means = torch.tensor([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.5]], dtype=dtype)
    covs = torch.stack(
        [
            torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=dtype),
            torch.tensor([[0.4, -0.1], [-0.1, 0.8]], dtype=dtype),
            torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=dtype),
        ]
    )
    return GaussianMixtureEnergy(means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=dtype))


def _targets():
    mean, cov = _corr_gauss(3)
    return [
        ("gaussian", GaussianEnergy(mean, cov), (3,)),
        ("mixture", _mixture(), (2,)),
        ("harmonic", HarmonicEnergy(stiffness=2.5), (1, 4, 4)),
        ("doublewell", DoubleWellEnergy(dim=3, barrier=3.0, separation=1.5), (3,)),
        ("rosenbrock", RosenbrockEnergy(dim=4, a=1.0, b=5.0), (4,)),
        ("rastrigin", RastriginEnergy(dim=3, amplitude=4.0), (3,)),
        ("ackley", AckleyEnergy(dim=3), (3,)),
    ]


TARGETS = _targets()
IDS = [t[0] for t in TARGETS]


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(("name", "energy", "shape"), TARGETS, ids=IDS)
def test_closed_form_gradient_equals_autograd(name, energy, shape):
    x = 1.5 * torch.randn(64, *shape, generator=_gen(1), dtype=D64)
    e, g = energy.energy_and_grad(x)
    xg = x.clone().requires_grad_(True)
    e_auto = energy(xg)
    (g_auto,) = torch.autograd.grad(e_auto.sum(), xg)
    assert e.shape == (64,) and g.shape == x.shape
    assert e.dtype == D64 and g.dtype == D64
    torch.testing.assert_close(e, e_auto.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_auto, rtol=1e-10, atol=1e-10)
    # the library entry point uses the closed form and returns the same thing
    _, g2 = energy_and_grad(energy, x)
    torch.testing.assert_close(g2, g, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "energy", "shape"), TARGETS, ids=IDS)
def test_closed_form_gradient_matches_finite_differences(name, energy, shape):
    x = torch.randn(3, *shape, generator=_gen(2), dtype=D64)
    _, g = energy.energy_and_grad(x)
    h = 1e-6
    flat = x.reshape(3, -1)
    fd = torch.empty_like(flat)
    for j in range(flat.shape[1]):
        dx = torch.zeros_like(flat)
        dx[:, j] = h
        up = energy((flat + dx).reshape(x.shape))
        dn = energy((flat - dx).reshape(x.shape))
        fd[:, j] = (up - dn) / (2 * h)
    torch.testing.assert_close(g.reshape(3, -1), fd, rtol=1e-6, atol=1e-5)
    # and autograd through forward passes gradcheck (finite differences on E itself)
    assert torch.autograd.gradcheck(energy, (x.clone().requires_grad_(True),))


def test_ackley_gradient_at_the_cusp_is_zero_and_finite():
    e, g = AckleyEnergy(dim=2).energy_and_grad(torch.zeros(2, 2, dtype=D64))
    assert torch.all(g == 0) and torch.allclose(e, torch.zeros(2, dtype=D64), atol=1e-12)


def test_gaussian_density_matches_torch_distributions():
    mean, cov = _corr_gauss(3)
    g = GaussianEnergy(mean, cov)
    x = torch.randn(50, 3, generator=_gen(3), dtype=D64)
    ref = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
    torch.testing.assert_close(-g(x) - g.log_partition(), ref, rtol=1e-12, atol=1e-12)
    logdet = torch.logdet(cov)
    torch.testing.assert_close(g.log_partition(), 1.5 * math.log(2 * math.pi) + 0.5 * logdet)


def test_mixture_density_matches_torch_distributions():
    gm = _mixture()
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=gm.weights),
        torch.distributions.MultivariateNormal(gm.means, covariance_matrix=gm.covariances),
    )
    x = 2 * torch.randn(100, 2, generator=_gen(4), dtype=D64)
    torch.testing.assert_close(-gm(x) - gm.log_partition(), mix.log_prob(x), rtol=1e-12, atol=1e-12)
    r = gm.responsibilities(x)
    torch.testing.assert_close(r.sum(1), torch.ones(100, dtype=D64))


def _log_quadrature_2d(energy, lo, hi, n=1201):
    """log ∫∫ exp(-E) over [lo, hi]² by the 2-D Simpson rule (float64)."""
    t = torch.linspace(lo, hi, n, dtype=D64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack((xx.reshape(-1), yy.reshape(-1)), 1)
    le = -energy(pts).reshape(n, n)
    w = torch.ones(n, dtype=D64)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    h = (hi - lo) / (n - 1)
    m = le.max()
    return float(m + torch.log((w[:, None] * w[None, :] * torch.exp(le - m)).sum() * (h / 3) ** 2))


def test_mixture_log_partition_against_2d_quadrature():
    gm = _mixture()
    assert abs(_log_quadrature_2d(gm, -12.0, 12.0) - float(gm.log_partition())) < 1e-8


def test_double_well_rastrigin_rosenbrock_log_partition_against_quadrature():
    dw = DoubleWellEnergy(dim=2, barrier=3.0, separation=1.5)
    assert abs(_log_quadrature_2d(dw, -10.0, 10.0) - float(dw.log_partition())) < 1e-8
    ra = RastriginEnergy(dim=2, amplitude=2.0)
    assert abs(_log_quadrature_2d(ra, -9.0, 9.0, n=2401) - float(ra.log_partition())) < 1e-8
    ro = RosenbrockEnergy(dim=2, a=0.5, b=2.0)
    # the valley bends upward: y ≈ x², so the box must reach well above x_max²
    t = torch.linspace(-6.0, 6.0, 1201, dtype=D64)
    s = torch.linspace(-6.0, 40.0, 4601, dtype=D64)
    xx, yy = torch.meshgrid(t, s, indexing="ij")
    le = -ro(torch.stack((xx.reshape(-1), yy.reshape(-1)), 1)).reshape(xx.shape)
    z = torch.trapezoid(torch.trapezoid(torch.exp(le), s, dim=1), t)
    assert abs(float(torch.log(z)) - float(ro.log_partition())) < 1e-6


def test_harmonic_log_partition_and_any_event_shape():
    h = HarmonicEnergy(stiffness=2.0)
    x = torch.randn(5, 1, 4, 4, dtype=D64)
    e, g = energy_and_grad(h, x)
    assert e.shape == (5,) and g.shape == x.shape
    torch.testing.assert_close(g, 2.0 * x)
    torch.testing.assert_close(
        h.log_partition((1, 4, 4)), torch.tensor(8 * math.log(math.pi), dtype=D64)
    )
    ref = torch.distributions.Normal(0.0, 1 / math.sqrt(2.0)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(-h(x) - h.log_partition((1, 4, 4)), ref)


# --------------------------------------------------------------------------- exact sampling


def _check_mean(samples, truth, label):
    n = samples.shape[0]
    se = samples.std(0) / math.sqrt(n)
    err = (samples.mean(0) - truth).abs()
    assert bool((err <= Z * se).all()), f"{label}: |mean - truth| = {err} > {Z} * {se}"


def _check_cov(samples, truth, label):
    n = samples.shape[0]
    c = samples - samples.mean(0)
    prods = c[:, :, None] * c[:, None, :]  # (n, d, d)
    est = prods.mean(0) * n / (n - 1)
    se = prods.std(0) / math.sqrt(n)
    err = (est - truth).abs()
    assert bool((err <= Z * se).all()), f"{label}: cov error {err} > {Z} * {se}"


def test_gaussian_sample_moments():
    mean, cov = _corr_gauss(3)
    s = GaussianEnergy(mean, cov).sample(40_000, generator=_gen(5))
    assert s.shape == (40_000, 3) and s.dtype == D64
    _check_mean(s, mean, "gaussian mean")
    _check_cov(s, cov, "gaussian cov")


def test_mixture_sample_moments_and_weights():
    gm = _mixture()
    s = gm.sample(40_000, generator=_gen(6))
    w, mu, cov = gm.weights, gm.means, gm.covariances
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    _check_mean(s, mean, "mixture mean")
    _check_cov(s, second - mean[:, None] * mean[None, :], "mixture cov")
    # mean responsibilities under p equal the weights: E_p[r_k(x)] = w_k
    _check_mean(gm.responsibilities(s), w, "mixture weights")


def test_rosenbrock_and_harmonic_exact_samples():
    ro = RosenbrockEnergy(dim=2, a=0.7, b=3.0)
    s = ro.sample(40_000, generator=_gen(7), dtype=D64)
    _check_mean(s, torch.tensor([0.7, 0.49 + 0.5], dtype=D64), "rosenbrock mean")
    # under p ∝ exp(-E) for two Gaussian factors, E[E(x)] = D/2 = 1
    _check_mean(ro(s)[:, None], torch.tensor([1.0], dtype=D64), "rosenbrock mean energy")
    h = HarmonicEnergy(stiffness=4.0, event_shape=(1, 4, 4))
    hs = h.sample(20_000, generator=_gen(8), dtype=D64)
    assert hs.shape == (20_000, 1, 4, 4)
    _check_mean(hs.reshape(-1, 16).square(), torch.full((16,), 0.25, dtype=D64), "harmonic var")


def test_sampling_is_reproducible_with_a_generator():
    mean, cov = _corr_gauss(2)
    g = GaussianEnergy(mean, cov)
    torch.testing.assert_close(g.sample(7, generator=_gen(3)), g.sample(7, generator=_gen(3)))
    gm = _mixture()
    torch.testing.assert_close(gm.sample(7, generator=_gen(3)), gm.sample(7, generator=_gen(3)))


# --------------------------------------------------------------------------- dtype / device


def test_parameters_follow_input_dtype_and_module_to():
    mean, cov = _corr_gauss(2, dtype=torch.float32)
    g = GaussianEnergy(mean, cov)
    x = torch.randn(4, 2, dtype=D64)
    e, grad = energy_and_grad(g, x)
    assert e.dtype == D64 and grad.dtype == D64
    g64 = g.to(D64)
    assert g64.mean.dtype == D64 and g64.sample(3).dtype == D64
    assert list(g.parameters()) == []  # parameters are buffers: never get a .grad
    gm = _mixture(dtype=torch.float32)
    assert energy_and_grad(gm, x)[1].dtype == D64
    assert energy_and_grad(RastriginEnergy(), x.float())[1].dtype == torch.float32


# --------------------------------------------------------------------------- composition


def test_sum_of_two_gaussians_is_the_product_gaussian():
    m1, c1 = _corr_gauss(2)
    m2 = torch.tensor([1.0, -2.0], dtype=D64)
    c2 = torch.tensor([[0.5, 0.2], [0.2, 1.5]], dtype=D64)
    p1, p2 = torch.linalg.inv(c1), torch.linalg.inv(c2)
    prec = p1 + p2
    mean = torch.linalg.solve(prec, p1 @ m1 + p2 @ m2)
    prod = GaussianEnergy(mean, torch.linalg.inv(prec))
    s = GaussianEnergy(m1, c1) + GaussianEnergy(m2, c2)
    x = torch.randn(30, 2, generator=_gen(9), dtype=D64)
    e, g = energy_and_grad(s, x)
    ep, gp = energy_and_grad(prod, x)
    torch.testing.assert_close(g, gp)
    diff = e - ep  # a constant (the log normaliser ratio)
    torch.testing.assert_close(diff, diff[:1].expand(30))
    # tempering N(μ, Σ) by T gives N(μ, TΣ) (up to a constant)
    t = GaussianEnergy(m1, c1).tempered(2.0)
    torch.testing.assert_close(
        energy_and_grad(t, x)[1], energy_and_grad(GaussianEnergy(m1, 2 * c1), x)[1]
    )


# --------------------------------------------------------------------------- bad input


def test_gaussian_rejects_bad_parameters():
    with pytest.raises(ValueError, match="covariance must be positive definite"):
        GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="covariance must be positive definite"):
        GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="covariance must be symmetric"):
        GaussianEnergy(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"shape \(D, D\) = \(3, 3\)"):
        GaussianEnergy(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match=r"mean must have shape \(D,\)"):
        GaussianEnergy(torch.zeros(2, 2), torch.eye(2))
    with pytest.raises(ValueError, match="finite"):
        GaussianEnergy(torch.tensor([0.0, float("nan")]), torch.eye(2))
    with pytest.raises(TypeError, match="mean"):
        GaussianEnergy("zero", torch.eye(2))


def test_mixture_rejects_bad_parameters():
    means = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        GaussianMixtureEnergy(means, torch.eye(2), torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match=r"weights must sum to 1, got sum 0\.7"):
        GaussianMixtureEnergy(means, torch.eye(2), torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match=r"weights must have shape \(K,\) = \(2,\)"):
        GaussianMixtureEnergy(means, torch.eye(2), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="covariances must have shape"):
        GaussianMixtureEnergy(means, torch.eye(3))
    singular = torch.stack([torch.eye(2), torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="covariances must be positive definite"):
        GaussianMixtureEnergy(means, singular)
    uniform = GaussianMixtureEnergy(means, torch.eye(2))
    torch.testing.assert_close(uniform.weights, torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(("name", "energy", "shape"), TARGETS, ids=IDS)
def test_wrong_input_shape_is_a_clear_error(name, energy, shape):
    if name == "harmonic":  # any event shape is valid; only non-floating/0-d input fails
        with pytest.raises(TypeError, match="floating"):
            energy(torch.ones(3, 2, dtype=torch.long))
        return
    d = shape[0]
    with pytest.raises(
        ValueError, match=rf"expects x of shape \(C, {d}\), got shape \(5, {d + 1}\)"
    ):
        energy(torch.zeros(5, d + 1))
    with pytest.raises(ValueError, match="expects x of shape"):
        energy.energy_and_grad(torch.zeros(d))


def test_other_constructor_errors():
    with pytest.raises(ValueError, match="event_shape"):
        HarmonicEnergy().log_partition()
    with pytest.raises(ValueError, match="stiffness"):
        HarmonicEnergy(stiffness=0.0)
    with pytest.raises(ValueError, match="dim=2"):
        RosenbrockEnergy(dim=3).log_partition()
    with pytest.raises(ValueError, match="dim >= 2"):
        RosenbrockEnergy(dim=1)
    with pytest.raises(ValueError, match="barrier"):
        DoubleWellEnergy(barrier=-1.0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        GaussianEnergy(torch.zeros(1), torch.eye(1)).sample(0)


def test_gaussian_grouped_cpu_layout_matches_the_row_by_row_formula():
    """The grouped CPU layout (rows side by side, block-diagonal precision) gives each chain
    the plain formula's values; a non-finite chain does not spill NaN into its neighbours; an
    in-place edit of the mean is seen; odd C and large D take the plain path."""
    torch.manual_seed(0)
    for c, d in ((10000, 2), (96, 3), (64, 1), (64, 8), (7, 2), (64, 12)):
        a = torch.randn(d, d, dtype=torch.float64)
        g = GaussianEnergy(torch.randn(d, dtype=torch.float64), a @ a.T + d * torch.eye(d))
        x = torch.randn(c, d, dtype=torch.float64)
        e, gr = g.energy_and_grad(x)
        diff = x - g.mean
        torch.testing.assert_close(gr, diff @ g.precision, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(e, 0.5 * ((diff @ g.precision) * diff).sum(-1))
        x_bad = x.clone()
        x_bad[1, 0] = float("inf")
        e_bad, g_bad = g.energy_and_grad(x_bad)
        finite = torch.isfinite(e_bad) & torch.isfinite(g_bad).all(-1)
        assert finite.tolist() == [i != 1 for i in range(c)]
        torch.testing.assert_close(e_bad[finite], e[finite])  # same values up to rounding
        with torch.no_grad():
            g.mean.add_(1.0)
        torch.testing.assert_close(g.energy_and_grad(x)[1], (x - g.mean) @ g.precision)


def test_mixture_forward_is_differentiable_in_x_and_the_parameters():
    """The fast (K, D, C) layout keeps autograd intact: gradients in x match the closed form and
    reach means and precisions (the cached block-diagonal matrix is not used under autograd)."""
    from torchenergy.energies import GaussianMixtureEnergy
    from torchenergy.energies.base import Energy

    m = GaussianMixtureEnergy(
        torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64),
        torch.tensor([[0.5, 0.1], [0.1, 0.4]], dtype=torch.float64),
        weights=[0.3, 0.7],
    )
    x = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m.energy_and_grad(x)  # fills the block-diagonal cache
    _, g_auto = Energy.energy_and_grad(m, x)
    torch.testing.assert_close(m.energy_and_grad(x)[1], g_auto, rtol=1e-12, atol=1e-12)
    m.means.requires_grad_(True)
    m.precisions.requires_grad_(True)
    m(x).sum().backward()
    assert m.means.grad is not None and bool(m.means.grad.abs().sum() > 0)
    assert m.precisions.grad is not None and bool(m.precisions.grad.abs().sum() > 0)
    # second order, as score matching needs: d/dx Σ_j ∂E/∂x_j against central differences of
    # the closed-form gradient
    xg = x.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(m(xg).sum(), xg, create_graph=True)
    (hvp,) = torch.autograd.grad(g2.sum(), xg)
    h = 1e-6
    fd = torch.stack(
        [
            (m.energy_and_grad(x + h * e)[1].sum(1) - m.energy_and_grad(x - h * e)[1].sum(1))
            / (2 * h)
            for e in torch.eye(2, dtype=torch.float64)
        ],
        dim=1,
    )
    torch.testing.assert_close(hvp, fd, rtol=1e-6, atol=1e-6)
