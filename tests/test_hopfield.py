import pytest
import torch

from torchenergy.models import HopfieldNetwork, ModernHopfield

D64 = torch.float64


def _patterns(p, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(p, n, generator=g, dtype=D64) < 0.5, -1.0, 1.0).to(D64)


def _corrupt(x, frac, seed):
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(x.shape, generator=g, dtype=D64) < frac
    return torch.where(flip, -x, x)


@pytest.mark.parametrize("rule", ["hebbian", "storkey"])
def test_async_updates_never_increase_the_energy(rule):
    net = HopfieldNetwork(40, dtype=D64).store(_patterns(8, 40, 0), rule=rule)
    torch.testing.assert_close(net.W, net.W.T)
    s = _corrupt(_patterns(50, 40, 1), 0.0, 2)
    e = net(s)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        order = torch.randperm(40, generator=g)
        for i in order.tolist():  # check after every single-unit update
            s = net.update_async(s, order=torch.tensor([i]))
            e_new = net(s)
            assert bool((e_new <= e + 1e-12).all())
            e = e_new


def test_sync_updates_can_increase_energy_and_cycle():
    # two units with a negative coupling: synchronous updates oscillate between two states
    net = HopfieldNetwork(2, dtype=D64)
    net.W.copy_(torch.tensor([[0.0, -1.0], [-1.0, 0.0]], dtype=D64))
    s = torch.tensor([[1.0, 1.0]], dtype=D64)
    res = net.recall(s, mode="sync", max_sweeps=10)
    assert not bool(res.converged.all()) and res.n_sweeps == 10
    assert bool(net.recall(s, mode="async").converged.all())


@pytest.mark.parametrize(
    ("rule", "mode"), [("hebbian", "async"), ("storkey", "async"), ("hebbian", "sync")]
)
def test_recall_of_corrupted_patterns_below_capacity(rule, mode):
    n, p = 200, 10  # 0.05 N, well below capacity
    pats = _patterns(p, n, 4)
    net = HopfieldNetwork(n, dtype=D64).store(pats, rule=rule)
    res = net.recall(_corrupt(pats, 0.1, 5), mode=mode, generator=torch.Generator().manual_seed(6))
    assert bool(res.converged.all())
    assert bool((res.x == pats).all(-1).all())


def test_storkey_stores_more_than_hebbian_above_hebbian_capacity():
    n, p = 100, 25  # 0.25 N: beyond the Hebbian capacity 0.138 N
    pats = _patterns(p, n, 7)
    heb = HopfieldNetwork(n, dtype=D64).store(pats, "hebbian")
    sto = HopfieldNetwork(n, dtype=D64).store(pats, "storkey")
    stable = lambda net: float((net.update_sync(pats) == pats).all(-1).to(D64).mean())  # noqa: E731
    assert stable(sto) > stable(heb) + 0.3, (stable(sto), stable(heb))


def test_modern_hopfield_energy_decreases_and_recalls_beyond_classical_capacity():
    n, p = 64, 200  # P > N: far beyond any classical capacity
    pats = _patterns(p, n, 8)
    net = ModernHopfield(pats, beta=1.0)
    q = _corrupt(pats, 0.2, 9)
    e0 = net(q)
    out = net.recall(q, steps=1)
    assert bool((net(out) <= e0 + 1e-9).all())
    # one-step retrieval of the stored pattern nearest to each query (for 20% corruption that is
    # the original pattern except where the noise made another stored pattern nearer)
    nearest = pats[(q @ pats.T).argmax(-1)]
    assert bool((torch.sign(out) == nearest).all(-1).all())
    assert float((nearest == pats).all(-1).to(D64).mean()) > 0.98
    # the update is attention, and the energy gradient is ξ - update(ξ)
    att = torch.softmax(q @ pats.T, -1) @ pats
    torch.testing.assert_close(net.update(q), att)
    xg = q[:3].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xg).sum(), xg)
    torch.testing.assert_close(net.energy_and_grad(q[:3])[1], g)
    # energy is bounded below by 0 with the Ramsauer constants
    assert bool((net(torch.randn(10, n, dtype=D64)) >= 0).all())


def test_validation():
    net = HopfieldNetwork(4)
    with pytest.raises(ValueError, match="spins"):
        net.store(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="rule"):
        net.store(torch.ones(1, 4), rule="oja")
    with pytest.raises(ValueError, match=r"\(P, D\)"):
        ModernHopfield(torch.ones(2, 4, 3))
