import pytest
import torch
from torch import nn

from torchenergy.energies import Energy, energy_and_grad


class Quad(Energy):
    def forward(self, x):
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_energy_and_grad_matches_closed_form_any_event_shape():
    x = torch.randn(5, 1, 3, 2, dtype=torch.float64)
    e, g = energy_and_grad(Quad(), x)
    assert e.shape == (5,) and g.shape == x.shape
    torch.testing.assert_close(g, x)
    torch.testing.assert_close(e, 0.5 * x.flatten(1).pow(2).sum(1))


def test_energy_and_grad_under_no_grad_and_leaves_param_grads_alone():
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    fn = lambda x: net(x).squeeze(-1)  # noqa: E731
    x = torch.randn(4, 2)
    with torch.no_grad():
        e, g = energy_and_grad(fn, x)
    assert not e.requires_grad and not g.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert g.shape == x.shape


def test_energy_and_grad_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(C,\)"):
        energy_and_grad(lambda x: x.sum(-1, keepdim=True), torch.randn(3, 2))


def test_composition_adds_scales_and_constrains():
    q = Quad()
    x = torch.randn(6, 2, dtype=torch.float64)
    torch.testing.assert_close((q + q)(x), 2 * q(x))
    torch.testing.assert_close((3.0 * q)(x), 3 * q(x))
    torch.testing.assert_close((q / 2.0)(x), q(x) / 2)
    e, g = energy_and_grad(q + 2.0 * q, x)
    torch.testing.assert_close(g, 3 * x)
    hard = q.restricted(lambda x: x[:, 0] > 0)
    e, g = energy_and_grad(hard, x)
    assert torch.isinf(e[x[:, 0] <= 0]).all() and torch.isfinite(e[x[:, 0] > 0]).all()
    assert torch.isfinite(g).all()
    with pytest.raises(ValueError, match="temperature"):
        q.tempered(-1.0)
