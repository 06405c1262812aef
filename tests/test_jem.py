"""JEM: exact energies, the class-conditional view under MALA/Langevin, errors."""

import math

import pytest
import torch
from torch import nn

from torchenergy.models import JEM, ConditionalEnergy, ConvClassifier
from torchenergy.samplers import MALA, Langevin, run_chain

Z = 4.0


def test_energies_are_minus_logsumexp_and_minus_logit_and_probs_are_softmax():
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    jem = JEM(clf, n_classes=5)
    x = torch.randn(7, 3, 2, 2, dtype=torch.float64)
    clf.double()
    f = clf(x)
    torch.testing.assert_close(jem.energy(x), -torch.logsumexp(f, -1), rtol=0, atol=0)
    torch.testing.assert_close(jem(x), -torch.logsumexp(f, -1), rtol=0, atol=0)
    y = torch.tensor([0, 4, 2, 1, 3, 3, 0])
    torch.testing.assert_close(jem.energy(x, y), -f[torch.arange(7), y], rtol=0, atol=0)
    torch.testing.assert_close(jem.energy(x, 2), -f[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(jem.probs(x), torch.softmax(f, -1))
    torch.testing.assert_close(jem.log_prob_y(x).exp(), torch.softmax(f, -1))
    # p(y|x) = exp(-E(x, y)) / exp(-E(x)): the normalising constant cancels
    torch.testing.assert_close(
        torch.exp(jem.energy(x) - jem.energy(x, y)), jem.probs(x)[torch.arange(7), y]
    )
    assert jem.predict(x).tolist() == f.argmax(-1).tolist()
    assert jem.predict(x, batch_size=3).tolist() == f.argmax(-1).tolist()
    cond = jem.conditional(y)
    assert isinstance(cond, ConditionalEnergy)
    torch.testing.assert_close(cond(x), -f[torch.arange(7), y], rtol=0, atol=0)


def test_errors_name_the_bad_value():
    jem = JEM(nn.Linear(2, 3), n_classes=3)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        JEM(lambda x: x)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        jem.energy(torch.zeros(2, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(C,\)"):
        jem.energy(torch.zeros(2, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        jem.energy(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        jem.conditional(5)
    with pytest.raises(ValueError, match="logits of shape"):
        JEM(nn.Flatten(0))(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="strides"):
        ConvClassifier(1, 10, (8, 8), strides=(3, 1))
    with pytest.raises(ValueError, match="pool"):
        ConvClassifier(1, 10, (8,), pool="max")
    with pytest.raises(ValueError, match=r"\(C, 1, H, W\)"):
        ConvClassifier(1, 10, (8,))(torch.zeros(2, 3, 4, 4))


def test_conv_classifier_shapes_flatten_and_spectral_norm():
    net = ConvClassifier(
        1, 4, (4, 8, 8), strides=(2, 2, 2), pool="flatten", hidden=16, spectral_norm=True
    )
    jem = JEM(net, 4)
    x = torch.randn(3, 1, 28, 28)
    assert jem.logits(x).shape == (3, 4) and jem(x).shape == (3,)
    e, g = __import__("torchenergy").energies.energy_and_grad(jem, x)
    assert e.shape == (3,) and g.shape == x.shape


class GaussianClassesLogits(nn.Module):
    """f_k(x) = w_k·x + b_k − |x|²/(2σ²) with w_k = μ_k/σ², b_k = log π_k − |μ_k|²/(2σ²): then
    p(x, y=k) = π_k N(x; μ_k, σ² I) exactly, and p(y|x) is a linear softmax."""

    def __init__(self, mu, log_pi, sigma):
        super().__init__()
        self.mu, self.log_pi, self.sigma = mu, log_pi, sigma

    def forward(self, x):
        s2 = self.sigma**2
        w, b = self.mu / s2, self.log_pi - 0.5 * (self.mu**2).sum(-1) / s2
        return x @ w.T + b - 0.5 * (x**2).sum(-1, keepdim=True) / s2


MU = torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]], dtype=torch.float64)
SIGMA = 0.7


def _jem():
    return JEM(
        GaussianClassesLogits(
            MU, torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)), SIGMA
        ),
        3,
    )


def _matches(x, y, mean, var) -> bool:
    """Per class and coordinate: sample mean and variance within Z·MCSE of the truth."""
    ok = True
    for k in range(3):
        xs = x[y == k]
        n = xs.shape[0]
        m_err = (xs.mean(0) - mean[k]).abs() / math.sqrt(var / n)
        v_err = (xs.var(0) - var).abs() / (var * math.sqrt(2.0 / (n - 1)))
        ok = ok and bool((m_err < Z).all()) and bool((v_err < Z).all())
    return ok


def test_class_conditional_mala_reaches_the_exact_conditional_and_a_wrong_energy_fails():
    jem = _jem()
    g = torch.Generator().manual_seed(0)
    n = 3000
    y = torch.arange(n) % 3
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    x = run_chain(MALA(jem.conditional(y), 0.3), x0, 100, generator=g).x
    assert _matches(x, y, MU, SIGMA**2)
    # power check: a class shifted by one (a broken label lookup) fails the same test
    wrong = run_chain(MALA(jem.conditional((y + 1) % 3), 0.3), x0, 100, generator=g).x
    assert not _matches(wrong, y, MU, SIGMA**2)


def test_class_conditional_langevin_has_its_known_ula_variance():
    jem = _jem()
    g = torch.Generator().manual_seed(1)
    n, eps = 3000, 0.25
    y = torch.arange(n) % 3
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    x = run_chain(Langevin(jem.conditional(y), eps), x0, 60, generator=g).x
    s2 = SIGMA**2
    ula_var = s2 / (1 - eps / (2 * s2))  # ULA on a Gaussian: variance σ²/(1 − ε/(2σ²)), mean exact
    assert _matches(x, y, MU, ula_var)
    assert not _matches(x, y, MU, s2)  # the bias is visible: ULA is not exact at this ε


def test_unconditional_mala_keeps_the_mixture_stationary():
    jem = _jem()
    g = torch.Generator().manual_seed(2)
    n = 3000
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    y = torch.multinomial(pi, n, replacement=True, generator=g)
    x0 = MU[y] + SIGMA * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = run_chain(MALA(jem, 0.3), x0, 50, generator=g).x
    mean = (pi[:, None] * MU).sum(0)
    cov = SIGMA**2 * torch.eye(2, dtype=torch.float64) + (
        pi[:, None, None] * ((MU - mean)[:, :, None] * (MU - mean)[:, None, :])
    ).sum(0)
    err = (x.mean(0) - mean).abs() / (cov.diagonal() / n).sqrt()
    assert bool((err < Z).all())
    # the label posterior of the samples is the classifier's: mean p(y|x) = π
    p = jem.probs(x).mean(0)
    assert bool(((p - pi).abs() < Z * (pi * (1 - pi) / n).sqrt()).all())
