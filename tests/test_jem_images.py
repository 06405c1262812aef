"""Image-side pieces: Fréchet distance and KID exactness, the feature-net cache, inpainting,
denoising, constraints, the Animal-MNIST loader and image animations."""

import gzip
import itertools
import math
import pickle

import pytest
import torch

from torchenergy.energies import ConvEnergy
from torchenergy.image_tasks import (
    InpaintEnergy,
    brightness_penalty,
    denoise,
    inpaint,
    region_penalty,
)
from torchenergy.metrics import frechet_distance, kernel_distance
from torchenergy.metrics_images import frechet_distance_gaussians, polynomial_mmd2, sqrtm_psd
from torchenergy.samplers import MALA

Z = 4.0


def _spd(f, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(f, f, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(f, dtype=torch.float64)


def test_frechet_closed_form_for_known_gaussians():
    # commuting (diagonal) covariances: |Δμ|² + Σ (√a − √b)²
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 5.0 + ((a.sqrt() - b.sqrt()) ** 2).sum()
    got = frechet_distance_gaussians(mu_a, torch.diag(a), mu_b, torch.diag(b))
    assert float(got) == pytest.approx(float(expected), abs=1e-12)
    # general covariances: tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½) against scipy's sqrtm
    scipy_linalg = pytest.importorskip("scipy.linalg")
    ca, cb = _spd(5, 0), _spd(5, 1)
    sa = scipy_linalg.sqrtm(ca.numpy())
    cross = scipy_linalg.sqrtm(sa @ cb.numpy() @ sa).real
    ref = float(torch.trace(ca) + torch.trace(cb)) - 2 * float(cross.trace())
    z = torch.zeros(5, dtype=torch.float64)
    assert float(frechet_distance_gaussians(z, ca, z, cb)) == pytest.approx(ref, rel=1e-9)
    # symmetric, and zero for identical Gaussians (also singular ones)
    assert float(frechet_distance_gaussians(z, cb, z, ca)) == pytest.approx(ref, rel=1e-9)
    sing = torch.diag(torch.tensor([1.0, 0.0, 2.0, 0.0, 3.0], dtype=torch.float64))
    assert float(frechet_distance_gaussians(z, sing, z, sing)) == pytest.approx(0.0, abs=1e-12)


def test_frechet_of_feature_sets_uses_their_gaussian_fits_and_is_zero_for_identical_sets():
    g = torch.Generator().manual_seed(0)
    fa = torch.randn(400, 6, generator=g, dtype=torch.float64)
    fb = torch.randn(300, 6, generator=g, dtype=torch.float64) * 1.5 + 0.3
    ref = frechet_distance_gaussians(fa.mean(0), torch.cov(fa.T), fb.mean(0), torch.cov(fb.T))
    assert float(frechet_distance(fa, fb)) == pytest.approx(float(ref), rel=1e-12)
    assert float(frechet_distance(fa, fa)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="width"):
        frechet_distance(fa, fb[:, :3])
    s = sqrtm_psd(_spd(4, 2))
    torch.testing.assert_close(s @ s, _spd(4, 2))


def _gauss_moment(mu, var, k):
    return [1.0, mu, mu**2 + var, mu**3 + 3 * mu * var][k]


def _expected_kernel(p, q, d):
    """E[(x·y/d + 1)³] for independent x ~ N(p_mu, diag p_var), y ~ N(q_mu, diag q_var), exactly:
    expand (x·y)^j by multinomials and use the Gaussian raw moments of each coordinate."""
    total = 0.0
    for j in range(4):
        ej = 0.0
        for alpha in itertools.product(range(j + 1), repeat=d):
            if sum(alpha) != j:
                continue
            coef = math.factorial(j) / math.prod(math.factorial(a) for a in alpha)
            term = coef
            for i, a in enumerate(alpha):
                term *= _gauss_moment(p[0][i], p[1][i], a) * _gauss_moment(q[0][i], q[1][i], a)
            ej += term
        total += math.comb(3, j) * ej / d**j
    return total


def test_kernel_distance_is_unbiased_within_mcse_and_the_biased_estimate_is_not():
    d = 3
    p = ([0.0, 0.5, -0.3], [1.0, 0.64, 1.44])
    q = ([0.4, 0.5, 0.0], [1.0, 1.0, 0.81])
    truth = _expected_kernel(p, p, d) + _expected_kernel(q, q, d) - 2 * _expected_kernel(p, q, d)
    g = torch.Generator().manual_seed(0)
    n, reps = 20, 3000
    mp, sp = torch.tensor(p[0], dtype=torch.float64), torch.tensor(p[1], dtype=torch.float64).sqrt()
    mq, sq = torch.tensor(q[0], dtype=torch.float64), torch.tensor(q[1], dtype=torch.float64).sqrt()
    est, biased = [], []
    for _ in range(reps):
        a = mp + sp * torch.randn(n, d, generator=g, dtype=torch.float64)
        b = mq + sq * torch.randn(n, d, generator=g, dtype=torch.float64)
        est.append(float(kernel_distance(a, b, n_subsets=1, subset_size=n, generator=g).mean))
        kaa, kbb, kab = ((u @ v.T / d + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        biased.append(float(kaa.mean() + kbb.mean() - 2 * kab.mean()))  # the V-statistic
    e, bz = torch.tensor(est), torch.tensor(biased)
    assert abs(float(e.mean()) - truth) < Z * float(e.std()) / math.sqrt(reps)
    assert abs(float(bz.mean()) - truth) > Z * float(bz.std()) / math.sqrt(reps)  # power check
    # one subset of the whole set is the plain unbiased estimate
    assert est[-1] == pytest.approx(float(polynomial_mmd2(a, b)), rel=1e-12)


def test_kernel_distance_subsets_and_errors():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(300, 4, generator=g), torch.randn(200, 4, generator=g) + 2
    kd = kernel_distance(a, b, n_subsets=5, subset_size=100, generator=g)
    assert float(kd.mean) > 0.1 and float(kd.std) >= 0
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        kernel_distance(torch.randn(1, 4), b)


def test_inpainting_never_changes_observed_pixels():
    torch.manual_seed(0)
    e = ConvEnergy(1, (4, 8))
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, :, :4] = True  # left half observed
    out = inpaint(e, obs, mask, n_steps=20, step_size=0.5, noise=0.05, generator=g)
    m = mask.expand_as(obs)
    assert torch.equal(out[m], obs[m])  # bit for bit
    assert not torch.equal(out[~m], obs[~m])  # the rest was sampled
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    ie = InpaintEnergy(e, obs, mask)
    _, grad = __import__("torchenergy").energies.energy_and_grad(ie, torch.zeros_like(obs))
    assert torch.equal(grad[m], torch.zeros_like(grad[m]))  # no force on observed pixels
    # any sampler: MALA through a factory
    out2 = inpaint(e, obs, mask, n_steps=10, sampler=lambda en: MALA(en, 0.01), generator=g)
    assert torch.equal(out2[m], obs[m])
    with pytest.raises(TypeError, match="bool"):
        inpaint(e, obs, mask.float())
    with pytest.raises(ValueError, match="broadcast"):
        inpaint(e, obs, torch.ones(2, 2, dtype=torch.bool))


def test_denoising_descends_the_energy_and_the_posterior_stays_near_the_observation():
    quad = lambda x: 0.5 * (x**2).flatten(1).sum(1)  # noqa: E731
    y = torch.full((2, 1, 3, 3), 0.8)
    prior = denoise(quad, y, n_steps=200, step_size=0.1)
    assert float(prior.abs().max()) < 1e-6
    post = denoise(quad, y, n_steps=400, step_size=0.05, sigma=1.0)
    torch.testing.assert_close(post, y / 2, atol=1e-5, rtol=0)  # argmin of x²/2 + (x − y)²/2


def test_constraints_compose_with_a_class_energy():
    from torchenergy.models import JEM

    jem = JEM(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)), 3)
    b = brightness_penalty(-0.5)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0] = True
    r = region_penalty(mask, 1.0)
    x = torch.zeros(2, 1, 4, 4)
    torch.testing.assert_close(b(x), torch.full((2,), 0.25 * 16))
    torch.testing.assert_close(r(x), torch.full((2,), 4.0))
    composed = jem.conditional(1).constrained(b, 2.0) + r
    expected = jem.energy(x, 1) + 2.0 * b(x) + r(x)
    torch.testing.assert_close(composed(x), expected)
    with pytest.raises(TypeError, match="number"):
        brightness_penalty("dark")


def test_feature_net_cache_loads_safely(tmp_path, monkeypatch):
    from torchenergy import features

    monkeypatch.setenv("TORCHENERGY_CACHE", str(tmp_path))
    assert features.cache_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="no cached"):
        features.fashion_feature_net(train_if_missing=False)
    net = features.FeatureNet()
    path = tmp_path / "f.pt"
    torch.save(
        {"format": features._FORMAT, "state_dict": net.state_dict(), "test_accuracy": 0.5}, path
    )
    loaded = features.fashion_feature_net(path=path, train_if_missing=False)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded.features(x), net.features(x))
    f = features.image_features(loaded, 2 * x - 1, value_range=(-1, 1), batch_size=2)
    torch.testing.assert_close(f, net.features(x))
    torch.save({"format": "other"}, path)
    with pytest.raises(ValueError, match="not a torchenergy feature-net"):
        features.fashion_feature_net(path=path)


def test_animal_mnist_loader_and_its_numpy_only_unpickler(tmp_path, monkeypatch):
    from torchenergy.data import animal_mnist

    try:
        x, y = animal_mnist.load_animal_mnist(flatten=False, limit=50)
    except FileNotFoundError as exc:
        assert "pip install --no-deps animal-mnist" in str(exc)
    else:
        assert x.shape == (50, 1, 28, 28) and y.shape == (50,)
        assert 0 <= float(x.min()) and float(x.max()) <= 1 and int(y.max()) <= 9
    bad = tmp_path / "evil.gz"
    with gzip.open(bad, "wb") as f:
        pickle.dump(print, f)  # a non-array global: must be refused, not called
    with pytest.raises(pickle.UnpicklingError, match="disallowed"):
        animal_mnist._read(bad)
    monkeypatch.setattr(animal_mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps animal-mnist==0\.4"):
        animal_mnist.load_animal_mnist()


def test_image_animation_writes_a_gif(tmp_path):
    pytest.importorskip("matplotlib")
    from torchenergy.viz import save_image_animation

    frames = [(s, torch.rand(6, 1, 8, 8) * 2 - 1) for s in (0, 5, 10)]
    p = save_image_animation(frames, tmp_path / "a.gif", nrow=3)
    assert p.stat().st_size > 0
    with pytest.raises(ValueError, match="no frames"):
        save_image_animation([], tmp_path / "b.gif")
