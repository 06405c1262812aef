"""Neural energies: shapes, gradients, spectral normalisation, errors."""

import pytest
import torch

from torchenergy.energies import ConvEnergy, MLPEnergy, energy_and_grad
from torchenergy.energies.neural import ACTIVATIONS

D64 = torch.float64


def _fd_grad(fn, x, h=1e-6):
    flat = x.reshape(x.shape[0], -1)
    out = torch.empty_like(flat)
    for j in range(flat.shape[1]):
        dx = torch.zeros_like(flat)
        dx[:, j] = h
        out[:, j] = (fn((flat + dx).reshape(x.shape)) - fn((flat - dx).reshape(x.shape))) / (2 * h)
    return out.reshape(x.shape)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_shapes_and_gradient(activation):
    torch.manual_seed(0)
    e = MLPEnergy(6, (16, 8), activation=activation).double()
    x = torch.randn(4, 6, dtype=D64)
    v, g = energy_and_grad(e, x)
    assert v.shape == (4,) and g.shape == (4, 6) and v.dtype == D64
    if activation not in ("relu", "leaky_relu"):  # kinks: finite differences unreliable there
        torch.testing.assert_close(g, _fd_grad(e, x), rtol=1e-6, atol=1e-7)
    # flattening: (C, *D) with prod(D) = in_features gives the same energies
    torch.testing.assert_close(e(x.reshape(4, 2, 3)), e(x))


def test_mlp_gradient_leaves_parameters_alone_under_no_grad():
    e = MLPEnergy(3, (8,))
    x = torch.randn(5, 3)
    with torch.no_grad():
        v, g = energy_and_grad(e, x)
    assert not v.requires_grad and not g.requires_grad
    assert all(p.grad is None for p in e.parameters())
    # differentiable in θ when called directly (training)
    e(x).sum().backward()
    assert all(p.grad is not None for p in e.parameters())


def test_mlp_spectral_norm_bounds_each_layer():
    torch.manual_seed(1)
    e = MLPEnergy(5, (32, 32), spectral_norm=True)
    x = torch.randn(10, 5)
    for _ in range(30):  # power iterations run in training mode
        e(x)
    e.eval()
    for layer in e.net:
        if isinstance(layer, torch.nn.Linear):
            assert hasattr(layer, "parametrizations")
            sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
            assert abs(float(sigma) - 1.0) < 1e-3
    # a Lipschitz bound: ‖∇E‖ ≤ prod of layer norms × activation Lipschitz (SiLU ≤ 1.1)
    _, g = energy_and_grad(e, torch.randn(200, 5))
    assert float(g.norm(dim=1).max()) <= 1.1**2 + 1e-4


def test_mlp_errors():
    with pytest.raises(ValueError, match=r"unknown activation 'swishy'; choose one of \["):
        MLPEnergy(2, activation="swishy")
    with pytest.raises(ValueError, match="in_features"):
        MLPEnergy(0)
    with pytest.raises(ValueError, match="hidden_features"):
        MLPEnergy(2, (16, 0))
    e = MLPEnergy(4, (8,))
    with pytest.raises(ValueError, match=r"expects x of shape \(C, 4\).*got shape \(3, 5\)"):
        e(torch.randn(3, 5))
    with pytest.raises(ValueError, match="at least 2"):
        e(torch.randn(4))
    with pytest.raises(TypeError, match="floating"):
        e(torch.ones(2, 4, dtype=torch.long))


def test_conv_energy_shapes_gradient_and_errors():
    torch.manual_seed(2)
    e = ConvEnergy(2, (4, 6), activation="softplus").double()
    x = torch.randn(3, 2, 5, 7, dtype=D64)
    v, g = energy_and_grad(e, x)
    assert v.shape == (3,) and g.shape == x.shape
    torch.testing.assert_close(g, _fd_grad(e, x), rtol=1e-6, atol=1e-7)
    assert ConvEnergy(1, (8, 16, 16))(torch.randn(2, 1, 28, 28)).shape == (2,)
    sn = ConvEnergy(1, (4,), spectral_norm=True)
    assert sn(torch.randn(2, 1, 8, 8)).shape == (2,)
    with pytest.raises(
        ValueError, match=r"expects x of shape \(C, 2, H, W\), got shape \(3, 1, 5, 5\)"
    ):
        e(torch.randn(3, 1, 5, 5, dtype=D64))
    with pytest.raises(ValueError, match="unknown activation"):
        ConvEnergy(1, activation="nope")
    with pytest.raises(ValueError, match="hidden_channels"):
        ConvEnergy(1, ())


def test_mlp_fourier_features_shapes_gradient_and_state():
    from torchenergy.energies.neural import FourierFeatures

    torch.manual_seed(0)
    e = MLPEnergy(2, (16,), fourier_features=8, fourier_scale=0.5).double()
    assert isinstance(e.net[0], FourierFeatures) and e.net[1].in_features == 16
    x = torch.randn(5, 2, dtype=D64)
    v, g = energy_and_grad(e, x)
    assert v.shape == (5,) and g.shape == (5, 2)
    torch.testing.assert_close(g, _fd_grad(e, x), rtol=1e-6, atol=1e-7)
    # the frequencies are a fixed buffer: saved and restored, never trained
    names = [n for n, _ in e.named_parameters()]
    assert not any(n.startswith("net.0") for n in names)
    assert "net.0.B" in e.state_dict()
    e2 = MLPEnergy(2, (16,), fourier_features=8, fourier_scale=0.5).double()
    e2.load_state_dict(e.state_dict())
    torch.testing.assert_close(e2(x), e(x))
    # the features themselves: sin/cos of 2 pi x B, so each pair has unit norm
    f = e.net[0](x)
    assert f.shape == (5, 16)
    torch.testing.assert_close(f[:, :8] ** 2 + f[:, 8:] ** 2, torch.ones(5, 8, dtype=D64))


def test_mlp_default_has_no_fourier_features_and_same_init():
    from torchenergy.energies.neural import FourierFeatures

    torch.manual_seed(3)
    a = MLPEnergy(2, (8, 8))
    torch.manual_seed(3)
    b = MLPEnergy(2, (8, 8), fourier_features=0)
    assert not any(isinstance(m, FourierFeatures) for m in a.modules())
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    assert a.net[0].in_features == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fourier_features": -1},
        {"fourier_features": 1.5},
        {"fourier_features": 4, "fourier_scale": 0.0},
    ],
)
def test_mlp_fourier_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MLPEnergy(2, (8,), **kwargs)


def _autograd_energy_and_grad(e, x):
    """The reference: autograd through the module's forward (the base class's path)."""
    from torchenergy.energies.base import Energy

    return Energy.energy_and_grad(e, x)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("hidden", [(), (7,), (16, 8, 5)])
def test_mlp_closed_form_gradient_equals_autograd(activation, hidden):
    torch.manual_seed(3)
    e = MLPEnergy(6, hidden, activation=activation).double()
    x = torch.randn(9, 2, 3, dtype=D64)  # an event shape (2, 3), flattened to 6
    x[0, 0, 0] = 0.0  # relu kinks: z exactly 0 can only come from a zero input row, below
    v, g = e.energy_and_grad(x)
    v_ref, g_ref = _autograd_energy_and_grad(e, x)
    assert v.shape == (9,) and g.shape == (9, 2, 3) and g.dtype == D64
    torch.testing.assert_close(v, v_ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-13)
    # ReLU at an exact kink: autograd's convention (derivative 0 at z = 0) is kept
    if activation == "relu" and hidden:
        first = e.net[0]
        with torch.no_grad():
            first.bias.zero_()
        z = torch.zeros(2, 6, dtype=D64)
        torch.testing.assert_close(e.energy_and_grad(z)[1], _autograd_energy_and_grad(e, z)[1])


def test_mlp_closed_form_gradient_fourier_and_spectral_norm():
    torch.manual_seed(4)
    e = MLPEnergy(3, (12, 12), fourier_features=5, fourier_scale=0.7).double()
    x = torch.randn(11, 3, dtype=D64)
    v, g = e.energy_and_grad(x)
    v_ref, g_ref = _autograd_energy_and_grad(e, x)
    torch.testing.assert_close(v, v_ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-13)
    # spectral norm in eval mode: the normalised weights are read, as in forward
    sn = MLPEnergy(4, (10,), spectral_norm=True).double()
    xs = torch.randn(6, 4, dtype=D64)
    for _ in range(5):
        sn(xs)
    sn.eval()
    torch.testing.assert_close(sn.energy_and_grad(xs)[1], _autograd_energy_and_grad(sn, xs)[1])
    # in training mode each evaluation runs one power iteration, exactly as forward does
    a = MLPEnergy(4, (10,), spectral_norm=True).double()
    b = MLPEnergy(4, (10,), spectral_norm=True).double()
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        ga = a.energy_and_grad(xs)[1]
        gb = _autograd_energy_and_grad(b, xs)[1]
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(a.state_dict(), b.state_dict())


def test_mlp_closed_form_builds_no_graph_and_falls_back():
    e = MLPEnergy(3, (8,))
    x = torch.randn(5, 3, requires_grad=True)
    v, g = energy_and_grad(e, x)
    assert not v.requires_grad and not g.requires_grad
    assert all(p.grad is None for p in e.parameters()) and x.grad is None
    # losses differentiate through the gradient: create_graph uses autograd and keeps the graph
    _, g2 = energy_and_grad(e, x, create_graph=True)
    assert g2.requires_grad
    torch.testing.assert_close(g2.detach(), g)
    # an unknown module in the network: the autograd path is used, same result
    e.net[1] = torch.nn.Hardswish()
    torch.testing.assert_close(e.energy_and_grad(x)[1], _autograd_energy_and_grad(e, x)[1])
    with pytest.raises(ValueError, match=r"MLPEnergy expects x of shape \(C, 3\)"):
        e.energy_and_grad(torch.randn(5, 4))
