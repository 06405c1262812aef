"""Structured hinge loss: brute-force loss-augmented maximisation, zero at a satisfied margin."""

import itertools

import pytest
import torch

from tests.crf_bruteforce import enumerate_taggings, full_tags, random_crf, random_masks
from torchenergy.models import (
    LinearChainCRF,
    TransitionConstraints,
    structured_hinge_loss,
)

K, STEPS = 3, 5


def _setup(seed, **kwargs):
    g = torch.Generator().manual_seed(seed)
    crf = random_crf(LinearChainCRF, K, g, **kwargs)
    e = torch.randn(6, STEPS, K, generator=g, dtype=torch.float64)
    mask = random_masks(6, STEPS, g)
    tags = torch.randint(0, K, (6, STEPS), generator=g).masked_fill(~mask, -100)
    return crf, e, mask, tags


@pytest.mark.parametrize("cost", [0.5, 1.0, 3.0])
def test_hinge_equals_brute_force_loss_augmented_max(cost):
    crf, e, mask, tags = _setup(int(cost * 10))
    out = structured_hinge_loss(crf, e, tags, mask, cost=cost, reduction="none")
    gold_score = crf.score(e, tags, mask).detach()
    for b, rows in enumerate(enumerate_taggings(crf, e, mask)):
        gold = tuple(tags[b][mask[b]].tolist())
        best = max(s + cost * sum(a != c for a, c in zip(y, gold)) for y, _, s in rows)
        assert abs(float(out.loss[b].detach()) - (best - float(gold_score[b]))) < 1e-10
        pred = out.predicted[b][mask[b]].tolist()
        assert int(out.hamming[b]) == sum(a != c for a, c in zip(pred, gold))
    assert (out.loss >= 0).all()
    assert (out.predicted[~mask] == -1).all()


def test_hinge_respects_constraints():
    tr = torch.ones(K, K, dtype=torch.bool)
    tr[0, 1] = tr[1, 1] = False
    cons = TransitionConstraints(
        tr, torch.ones(K, dtype=torch.bool), torch.ones(K, dtype=torch.bool)
    )
    crf, e, mask, _ = _setup(3, allowed_transitions=cons)
    tags = torch.full((6, STEPS), 2).masked_fill(~mask, -1)  # all-2 is allowed
    out = structured_hinge_loss(crf, e, tags, mask, reduction="none")
    for b, rows in enumerate(enumerate_taggings(crf, e, mask)):
        best = max(rows, key=lambda r: r[2] + sum(t != 2 for t in r[0]))
        assert out.predicted[b].tolist() == full_tags(best[0], best[1], STEPS)
        seq = out.predicted[b][mask[b]].tolist()
        assert all(tr[a, c] for a, c in itertools.pairwise(seq))


def test_hinge_is_zero_when_the_margin_holds_and_gradient_is_feature_difference():
    crf, e, mask, tags = _setup(4)
    onehot = torch.nn.functional.one_hot(tags.clamp_min(0), K).double()
    out = structured_hinge_loss(crf, e + 20 * onehot, tags, mask, reduction="sum")
    assert float(out.loss.detach()) == 0.0 and int(out.hamming.sum()) == 0
    e = e.requires_grad_(True)
    per_seq = structured_hinge_loss(crf, e, tags, mask, reduction="none")
    assert (per_seq.loss.detach() > 0).all()  # every sequence violates: subgradient is active
    per_seq.loss.sum().backward()
    pred = torch.nn.functional.one_hot(per_seq.predicted.clamp_min(0), K).double()
    torch.testing.assert_close(e.grad, (pred - onehot) * mask[..., None])


def test_hinge_bad_inputs():
    crf, e, mask, tags = _setup(5)
    with pytest.raises(ValueError, match="cost"):
        structured_hinge_loss(crf, e, tags, mask, cost=0.0)
    with pytest.raises(ValueError, match="reduction"):
        structured_hinge_loss(crf, e, tags, mask, reduction="max")
