"""Exactness of LinearChainCRF against brute-force enumeration of all K^T taggings."""

import itertools
import math

import pytest
import torch

from tests.crf_bruteforce import (
    brute_log_z,
    brute_marginals,
    enumerate_taggings,
    full_tags,
    random_crf,
    random_masks,
)
from torchenergy.models import LinearChainCRF, TransitionConstraints, bio_constraints

K = 3


def _setup(seed, steps, batch=6, constraints=None):
    g = torch.Generator().manual_seed(seed)
    kwargs = {} if constraints is None else {"allowed_transitions": constraints}
    crf = random_crf(LinearChainCRF, K, g, **kwargs)
    e = torch.randn(batch, steps, K, generator=g, dtype=torch.float64)
    mask = random_masks(batch, steps, g)
    return crf, e, mask, enumerate_taggings(crf, e, mask)


# A constraint set on 3 tags: 0 -> 2 and 2 -> 2 forbidden, tag 1 cannot start, tag 0 cannot end.
_TR = torch.ones(K, K, dtype=torch.bool)
_TR[0, 2] = _TR[2, 2] = False
CONSTRAINTS = TransitionConstraints(
    _TR, torch.tensor([True, False, True]), torch.tensor([False, True, True])
)


@pytest.mark.parametrize("constraints", [None, CONSTRAINTS], ids=["free", "constrained"])
@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_log_partition_equals_brute_force(steps, constraints):
    crf, e, mask, rows = _setup(steps, steps, constraints=constraints)
    log_z = crf.log_partition(e, mask)
    expected = torch.stack([brute_log_z(r) for r in rows])
    torch.testing.assert_close(log_z, expected, rtol=0, atol=1e-10)


def test_masked_first_token_equals_dropping_it():
    crf, e, _, _ = _setup(0, 5)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[:, 0] = False
    torch.testing.assert_close(crf.log_partition(e, mask), crf.log_partition(e[:, 1:]))
    torch.testing.assert_close(crf.decode(e, mask).tags[:, 1:], crf.decode(e[:, 1:]).tags)


def test_lengths_equal_prefix_mask():
    crf, e, _, _ = _setup(1, 5)
    lengths = torch.tensor([5, 1, 3, 2, 4, 5])
    mask = torch.arange(5) < lengths[:, None]
    torch.testing.assert_close(crf.log_partition(e, lengths=lengths), crf.log_partition(e, mask))
    assert torch.equal(crf.decode(e, lengths=lengths).tags, crf.decode(e, mask).tags)


@pytest.mark.parametrize("constraints", [None, CONSTRAINTS], ids=["free", "constrained"])
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_decode_equals_brute_force_argmax(steps, constraints):
    crf, e, mask, rows = _setup(10 + steps, steps, constraints=constraints)
    out = crf.decode(e, mask)
    assert out.tags.shape == (6, steps) and out.tags.dtype == torch.long
    for b, r in enumerate(rows):
        y, pos, s = max(r, key=lambda row: row[2])
        assert out.tags[b].tolist() == full_tags(y, pos, steps)
        assert math.isclose(float(out.scores[b]), s, abs_tol=1e-10)
    # the returned score is the score of the returned tagging
    torch.testing.assert_close(crf.score(e, out.tags, mask), out.scores)


@pytest.mark.parametrize("constraints", [None, CONSTRAINTS], ids=["free", "constrained"])
@pytest.mark.parametrize("k", [1, 2, 5, 40])
def test_nbest_equals_brute_force_top_k(k, constraints):
    steps = 4
    crf, e, mask, rows = _setup(20 + k, steps, constraints=constraints)
    out = crf.nbest(e, mask, k)
    assert out.tags.shape == (k, 6, steps) and out.scores.shape == (k, 6)
    for b, r in enumerate(rows):
        ranked = sorted((s for _, _, s in r), reverse=True)
        ranked = [s for s in ranked if s > -math.inf]
        want = ranked[:k] + [-math.inf] * max(0, k - len(ranked))
        got = out.scores[:, b].tolist()
        for g_, w_ in zip(got, want):
            assert (g_ == w_ == -math.inf) or math.isclose(g_, w_, abs_tol=1e-10)
        found = {}
        for y, pos, s in r:
            found[tuple(full_tags(y, pos, steps))] = s
        seen = set()
        for i in range(k):
            tags = tuple(out.tags[i, b].tolist())
            if got[i] == -math.inf:
                assert set(tags) == {-1}
                continue
            assert tags not in seen  # distinct paths
            seen.add(tags)
            assert math.isclose(found[tags], got[i], abs_tol=1e-10)
    assert torch.equal(out.tags[0], crf.decode(e, mask).tags)


@pytest.mark.parametrize("constraints", [None, CONSTRAINTS], ids=["free", "constrained"])
def test_marginals_sum_to_one_and_equal_brute_force(constraints):
    steps = 5
    crf, e, mask, rows = _setup(30, steps, constraints=constraints)
    marg = crf.marginals(e, mask)
    assert marg.shape == e.shape and not marg.requires_grad
    torch.testing.assert_close(marg.sum(2), mask.double())
    for b, r in enumerate(rows):
        torch.testing.assert_close(marg[b], brute_marginals(r, steps, K), rtol=0, atol=1e-10)


def test_marginals_differentiable_with_create_graph():
    crf, e, mask, _ = _setup(31, 4)
    e = e.requires_grad_(True)
    marg = crf.marginals(e, mask, create_graph=True)
    (marg[:, :, 0] ** 2).sum().backward()
    assert e.grad is not None and torch.isfinite(e.grad).all()
    assert crf.transitions.grad is not None


@pytest.mark.parametrize("constraints", [None, CONSTRAINTS], ids=["free", "constrained"])
def test_entropy_equals_brute_force(constraints):
    crf, e, mask, rows = _setup(40, 5, constraints=constraints)
    ent = crf.entropy(e, mask)
    for b, r in enumerate(rows):
        s = torch.tensor([row[2] for row in r], dtype=torch.float64)
        p = torch.softmax(s, 0)
        want = -(p[p > 0] * p[p > 0].log()).sum()
        assert math.isclose(float(ent[b]), float(want), abs_tol=1e-9)


def test_entropy_differentiable():
    crf, e, mask, _ = _setup(41, 4)
    e.requires_grad_(True)
    crf.entropy(e, mask, create_graph=True).sum().backward()
    assert torch.isfinite(e.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_nll_energy_and_score_relations():
    crf, e, mask, rows = _setup(50, 5)
    g = torch.Generator().manual_seed(3)
    tags = torch.randint(0, K, (6, 5), generator=g).masked_fill(~mask, -100)
    nll = crf.nll(e, tags, mask, reduction="none")
    assert (nll >= 0).all()
    torch.testing.assert_close(nll, crf.energy(e, tags, mask) + crf.log_partition(e, mask))
    for b, r in enumerate(rows):
        y = tuple(tags[b][mask[b]].tolist())
        s = next(row[2] for row in r if row[0] == y)
        assert math.isclose(float(-crf.energy(e, tags, mask)[b].detach()), s, abs_tol=1e-10)
    torch.testing.assert_close(crf.nll(e, tags, mask), nll.mean())
    torch.testing.assert_close(crf.nll(e, tags, mask, reduction="sum"), nll.sum())
    torch.testing.assert_close(
        crf.nll(e, tags, mask, reduction="token_mean"), nll.sum() / mask.sum()
    )
    torch.testing.assert_close(crf(e, tags, mask), nll.mean())  # calling gives the loss


def test_gradcheck_log_partition():
    g = torch.Generator().manual_seed(60)
    crf = random_crf(LinearChainCRF, K, g)
    e = torch.randn(3, 4, K, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    trans = crf.transitions.detach().clone().requires_grad_(True)
    start = crf.start_scores.detach().clone().requires_grad_(True)

    def log_z(e_, t_, s_, end_):
        c = LinearChainCRF(K).double()
        del c.transitions, c.start_scores, c.end_scores
        c.transitions, c.start_scores, c.end_scores = t_, s_, end_
        return c.log_partition(e_, mask)

    end = crf.end_scores.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(log_z, (e, trans, start, end))
    assert torch.autograd.gradgradcheck(log_z, (e, trans, start, end))


def test_gradients_finite_with_unreachable_states():
    # tag 2 can never be entered after the first position nor start: a state with no paths.
    tr = torch.ones(K, K, dtype=torch.bool)
    tr[:, 2] = False
    cons = TransitionConstraints(
        tr, torch.tensor([True, True, False]), torch.ones(K, dtype=torch.bool)
    )
    crf, e, mask, rows = _setup(70, 5, constraints=cons)
    e.requires_grad_(True)
    tags = torch.zeros(6, 5, dtype=torch.long)
    crf.nll(e, tags, mask).backward()
    assert torch.isfinite(e.grad).all() and torch.isfinite(crf.transitions.grad).all()
    assert crf.transitions.grad[:, 2].abs().max() == 0  # forbidden entries get no gradient
    torch.testing.assert_close(
        crf.log_partition(e, mask).detach(), torch.stack([brute_log_z(r) for r in rows])
    )


def test_bio_constraints_never_violated_by_any_output():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    cons = bio_constraints(labels)
    g = torch.Generator().manual_seed(80)
    crf = random_crf(LinearChainCRF, len(labels), g, scale=3.0, allowed_transitions=cons)
    with torch.no_grad():  # make forbidden moves attractive: they must still never appear
        crf.transitions[0, 2] = crf.transitions[1, 4] = 50.0
        crf.start_scores[2] = 50.0
    steps, batch = 6, 8
    e = 3 * torch.randn(batch, steps, len(labels), generator=g, dtype=torch.float64)
    e[..., 2] += 5
    mask = random_masks(batch, steps, g)

    def valid(row_tags, row_mask):
        seq = [t for t, m in zip(row_tags, row_mask) if m]
        assert all(t >= 0 for t in seq)
        if not cons.start[seq[0]]:
            return False
        return all(cons.transitions[a, b] for a, b in itertools.pairwise(seq))

    nb = crf.nbest(e, mask, 20)
    outs = [(crf.decode(e, mask).tags, None), *zip(nb.tags, nb.scores)]
    outs += [(t, None) for t in crf.sample(e, mask, 300, generator=g)]
    for tags, scores in outs:
        for b in range(batch):
            if scores is not None and scores[b] == -math.inf:  # fewer than 20 allowed paths
                assert (tags[b] == -1).all()
                continue
            assert valid(tags[b].tolist(), mask[b].tolist())
            assert (tags[b][~mask[b]] == -1).all()
    marg = crf.marginals(e, mask)
    first = mask & (mask.cumsum(1) == 1)
    assert marg[:, :, 2][first].abs().max() == 0  # I-PER never first
    assert torch.isfinite(crf.log_partition(e, mask)).all()


def test_no_allowed_tagging_gives_minus_inf_everywhere():
    tr = torch.zeros(2, 2, dtype=torch.bool)  # no transition allowed at all
    crf = LinearChainCRF(2, allowed_transitions=tr).double()
    e = torch.zeros(2, 3, 2, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    log_z = crf.log_partition(e, mask).detach()
    assert log_z[0] == -math.inf and math.isclose(float(log_z[1]), math.log(2))
    out = crf.decode(e, mask)
    assert out.scores[0] == -math.inf and (out.tags[0] == -1).all()
    nll = crf.nll(e, torch.zeros(2, 3, dtype=torch.long), mask, reduction="none")
    assert nll[0] == math.inf and math.isclose(float(nll[1].detach()), math.log(2))
    with pytest.raises(ValueError, match="no tagging allowed"):
        crf.sample(e, mask, 2)


def test_float32_device_and_dtype_follow_inputs():
    crf = LinearChainCRF(4)
    e = torch.randn(2, 7, 4)
    mask = torch.ones(2, 7, dtype=torch.bool)
    assert crf.log_partition(e, mask).dtype == torch.float32
    assert crf.marginals(e, mask).dtype == torch.float32
    assert crf.decode(e.double(), mask).scores.dtype == torch.float64
    assert crf.log_partition(e.double(), mask).dtype == torch.float64


def test_bad_inputs_raise_clear_errors():
    crf = LinearChainCRF(3)
    e = torch.randn(2, 4, 3)
    mask = torch.ones(2, 4, dtype=torch.bool)
    tags = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="K = num_tags = 3"):
        crf.log_partition(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, T, K\)"):
        crf.log_partition(torch.randn(2, 4))
    with pytest.raises(TypeError, match="floating"):
        crf.log_partition(torch.zeros(2, 4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mask must have shape"):
        crf.log_partition(e, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be bool"):
        crf.log_partition(e, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"rows \[1\] are all False"):
        crf.log_partition(e, torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool))
    with pytest.raises(ValueError, match="lengths must lie in"):
        crf.log_partition(e, lengths=torch.tensor([4, 0]))
    with pytest.raises(ValueError, match="lengths must lie in"):
        crf.log_partition(e, lengths=torch.tensor([5, 1]))
    with pytest.raises(ValueError, match="either mask or lengths"):
        crf.log_partition(e, mask, lengths=torch.tensor([4, 4]))
    with pytest.raises(ValueError, match=r"tags must have shape"):
        crf.nll(e, tags[:, :3], mask)
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\]"):
        crf.nll(e, tags + 3, mask)
    with pytest.raises(ValueError, match="reduction"):
        crf.nll(e, tags, mask, reduction="avg")
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        crf.nbest(e, mask, 0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        crf.sample(e, mask, 0)
    with pytest.raises(ValueError, match="num_tags"):
        LinearChainCRF(0)
    with pytest.raises(ValueError, match="bool tensor of shape"):
        LinearChainCRF(3, allowed_transitions=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="allowed_transitions"):
        LinearChainCRF(3, allowed_transitions=[[True]])
    with pytest.raises(ValueError, match="empty entity type"):
        bio_constraints(["O", "B-"])
    # tags at unselected positions may hold anything (e.g. -100 padding)
    low = mask.tril()
    assert torch.isfinite(crf.nll(e, tags.masked_fill(~low, -100), low))


def test_forbidden_gold_tagging_has_infinite_nll_but_finite_gradients_elsewhere():
    crf, e, mask, _ = _setup(90, 4, constraints=CONSTRAINTS)
    tags = torch.full((6, 4), 2)  # 2 -> 2 is forbidden: rows with >= 2 selected tokens are +inf
    e.requires_grad_(True)
    nll = crf.nll(e, tags, mask, reduction="none")
    two_plus = mask.sum(1) >= 2
    assert torch.isinf(nll[two_plus]).all() and torch.isfinite(nll[~two_plus]).all()
    nll.sum().backward()
    assert torch.isfinite(e.grad).all() and torch.isfinite(crf.transitions.grad).all()
    assert e.grad[two_plus].abs().max() == 0
