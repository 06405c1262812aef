"""OOD scores and metrics: exact against scikit-learn (ties included) and hand-computed cases."""

import numpy as np
import pytest
import torch

from torchenergy.ood import (
    aupr,
    auroc,
    classifier_scores,
    energy_as_score,
    energy_score,
    format_report,
    fpr_at_tpr,
    gradient_norm_score,
    max_softmax_score,
    ood_report,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(6))
def test_auroc_and_aupr_equal_scikit_learn_on_scores_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(5, 300, size=2)
    levels = int(rng.integers(2, 12))  # few distinct values: many ties, within and across sets
    s_in = rng.integers(0, levels, n_in).astype(float) + (seed % 2)
    s_out = rng.integers(0, levels, n_out).astype(float)
    y = np.r_[np.ones(n_in), np.zeros(n_out)]
    s = np.r_[s_in, s_out]
    t_in, t_out = torch.tensor(s_in), torch.tensor(s_out)
    assert float(auroc(t_in, t_out)) == pytest.approx(
        sklearn_metrics.roc_auc_score(y, s), abs=1e-12
    )
    assert float(aupr(t_in, t_out)) == pytest.approx(
        sklearn_metrics.average_precision_score(y, s), abs=1e-12
    )
    assert float(aupr(t_in, t_out, positive="out")) == pytest.approx(
        sklearn_metrics.average_precision_score(1 - y, -s), abs=1e-12
    )
    fpr, tpr, _ = sklearn_metrics.roc_curve(y, s, drop_intermediate=False)
    for target in (0.5, 0.8, 0.95):
        expected = fpr[np.searchsorted(tpr, target, side="left")]
        assert float(fpr_at_tpr(t_in, t_out, target)) == pytest.approx(expected, abs=1e-12)


def test_auroc_on_continuous_scores_equals_scikit_learn():
    g = torch.Generator().manual_seed(0)
    s_in, s_out = torch.randn(500, generator=g) + 1, torch.randn(400, generator=g)
    y = np.r_[np.ones(500), np.zeros(400)]
    s = torch.cat([s_in, s_out]).numpy()
    assert float(auroc(s_in, s_out)) == pytest.approx(
        sklearn_metrics.roc_auc_score(y, s), abs=1e-12
    )
    assert float(aupr(s_in, s_out)) == pytest.approx(
        sklearn_metrics.average_precision_score(y, s), abs=1e-12
    )


def test_fpr_at_tpr_hand_computed():
    # in: 10, 9, ..., 1 ; out: 9.5, 5, 5, 0.5, -1
    s_in = torch.arange(10, 0, -1).double()
    s_out = torch.tensor([9.5, 5.0, 5.0, 0.5, -1.0])
    # TPR >= 0.95 first at threshold 1 (all 10 in): out >= 1 are 9.5, 5, 5 -> 3/5
    assert float(fpr_at_tpr(s_in, s_out, 0.95)) == pytest.approx(0.6)
    # TPR >= 0.5 first at threshold 6 (5 of 10): out >= 6 is 9.5 -> 1/5
    assert float(fpr_at_tpr(s_in, s_out, 0.5)) == pytest.approx(0.2)
    # a tie between in and out at the threshold counts both (s >= t is "in"): TPR 0.6 at t = 5
    assert float(fpr_at_tpr(s_in, s_out, 0.6)) == pytest.approx(0.6)
    # AUROC by hand: pairs (in > out) + 0.5 (ties), over 50 pairs
    wins = sum(float(a > b) + 0.5 * float(a == b) for a in s_in for b in s_out)
    assert float(auroc(s_in, s_out)) == pytest.approx(wins / 50)


def test_perfect_and_reversed_separation():
    a, b = torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])
    assert float(auroc(a, b)) == 1.0 and float(auroc(b, a)) == 0.0
    assert float(fpr_at_tpr(a, b)) == 0.0 and float(fpr_at_tpr(b, a)) == 1.0
    assert float(aupr(a, b)) == 1.0


def test_metric_errors():
    with pytest.raises(ValueError, match="1-D"):
        auroc(torch.zeros(2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="non-empty"):
        auroc(torch.zeros(0), torch.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        aupr(torch.tensor([float("nan")]), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        fpr_at_tpr(torch.zeros(2), torch.zeros(2), tpr=0.0)
    with pytest.raises(ValueError, match="positive"):
        aupr(torch.zeros(2), torch.zeros(2), positive="both")


def test_scores():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(energy_score(logits), torch.logsumexp(logits, -1))
    torch.testing.assert_close(energy_score(logits, 2.0), 2.0 * torch.logsumexp(logits / 2.0, -1))
    torch.testing.assert_close(max_softmax_score(logits), torch.softmax(logits, -1).max(-1).values)
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    quad = lambda z: 0.5 * (z**2).sum(-1)  # noqa: E731
    torch.testing.assert_close(gradient_norm_score(quad, x), torch.tensor([-5.0, -1.0]))
    torch.testing.assert_close(
        gradient_norm_score(quad, x, batch_size=1), torch.tensor([-5.0, -1.0])
    )
    torch.testing.assert_close(energy_as_score(quad, x), torch.tensor([-12.5, -0.5]))
    with pytest.raises(ValueError, match=r"\(C, K\)"):
        energy_score(torch.zeros(3))
    with pytest.raises(ValueError, match="temperature"):
        energy_score(logits, 0.0)


def test_ood_report_over_several_sets_and_its_table():
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    logits_fn = lambda x: x @ w  # noqa: E731
    c = torch.tensor([1.5, -1.5])
    x_in = torch.cat(
        [torch.randn(100, 2, generator=g) * 0.3 + c, torch.randn(100, 2, generator=g) * 0.3 - c]
    )
    sets = {
        "origin": torch.randn(80, 2, generator=g) * 0.1,
        "far": torch.randn(60, 2, generator=g) * 0.1 + 3 * c,
    }
    rep = ood_report(classifier_scores(logits_fn), x_in, sets, batch_size=64, return_scores=True)
    assert set(rep) == {"max_softmax", "energy", "grad_norm", "_scores"}
    assert rep["energy"]["origin"]["auroc"] > 0.95  # near the origin the logits are small
    s_in = torch.tensor(rep["_scores"]["energy"]["in"])
    s_out = torch.tensor(rep["_scores"]["energy"]["origin"])
    assert rep["energy"]["origin"]["fpr95"] == float(fpr_at_tpr(s_in, s_out))
    table = format_report(rep, title="toy")
    assert "| energy | origin |" in table and "_scores" not in table
    with pytest.raises(ValueError, match="at least one"):
        ood_report({}, x_in, sets)
