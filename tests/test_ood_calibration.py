"""Calibration errors on hand-computed cases, reliability diagrams and score histograms."""

import pytest
import torch

from torchenergy.ood import (
    classwise_calibration_error,
    expected_calibration_error,
    max_calibration_error,
    reliability_bins,
)


def _probs(conf):
    """Two-class probabilities whose top class is 0 with the given confidences (> 0.5)."""
    c = torch.tensor(conf, dtype=torch.float64)
    return torch.stack([c, 1 - c], 1)


def test_ece_and_mce_hand_computed():
    # 10 bins of width 0.1. Bin (0.9, 1]: confidences 0.95, 0.95, 0.95, 0.95 with 3 right
    # -> |0.75 − 0.95| = 0.2; bin (0.6, 0.7]: 0.65, 0.65 with 2 right -> |1 − 0.65| = 0.35.
    p = _probs([0.95, 0.95, 0.95, 0.95, 0.65, 0.65])
    y = torch.tensor([0, 0, 0, 1, 0, 0])
    ece = (4 / 6) * 0.2 + (2 / 6) * 0.35
    assert float(expected_calibration_error(p, y, n_bins=10)) == pytest.approx(ece, abs=1e-12)
    assert float(max_calibration_error(p, y, n_bins=10)) == pytest.approx(0.35, abs=1e-12)
    b = reliability_bins(p, y, n_bins=10)
    assert b.count.tolist() == [0, 0, 0, 0, 0, 0, 2, 0, 0, 4]
    assert b.accuracy[9].item() == pytest.approx(0.75) and torch.isnan(b.accuracy[0])


def test_bin_edges_are_right_closed_and_zero_goes_to_the_first_bin():
    # confidence exactly 0.5 falls in (0.4, 0.5] with 10 bins; 1.0 in (0.9, 1]
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    b = reliability_bins(p, torch.tensor([0, 0]), n_bins=10)
    assert b.count[4] == 1 and b.count[9] == 1
    b0 = reliability_bins(torch.tensor([[0.0, 0.0]], dtype=torch.float64), torch.tensor([0]), 4)
    assert b0.count.tolist() == [1, 0, 0, 0]


def test_classwise_ece_hand_computed():
    # K = 2, 2 bins of width 0.5. Class 0 probabilities 0.8, 0.8, 0.3, 0.3 with [y=0] = 1,0,0,0:
    # bin (0.5,1]: conf 0.8, freq 0.5 -> 0.3; bin [0,0.5]: conf 0.3, freq 0 -> 0.3 -> ECE_0 = 0.3.
    # Class 1 probabilities 0.2, 0.2, 0.7, 0.7 with [y=1] = 0,1,1,1:
    # bin [0,0.5]: conf 0.2, freq 0.5 -> 0.3; bin (0.5,1]: conf 0.7, freq 1 -> 0.3 -> ECE_1 = 0.3.
    p = torch.tensor([[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 1])
    assert float(classwise_calibration_error(p, y, n_bins=2)) == pytest.approx(0.3, abs=1e-12)


def test_a_calibrated_predictor_has_small_ece_and_an_overconfident_one_does_not():
    g = torch.Generator().manual_seed(0)
    n = 20000
    conf = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    right = torch.rand(n, generator=g, dtype=torch.float64) < conf
    y = torch.where(right, 0, 1)
    p = torch.stack([conf, 1 - conf], 1)
    assert float(expected_calibration_error(p, y)) < 0.02
    sharp = torch.stack([conf.clamp(max=0.999) ** 0.2, 1 - conf.clamp(max=0.999) ** 0.2], 1)
    assert float(expected_calibration_error(sharp, y)) > 0.1


def test_calibration_errors():
    with pytest.raises(ValueError, match="logits"):
        expected_calibration_error(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), n_bins=0)


def test_reliability_diagram_and_score_histograms_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    from torchenergy.viz import plot_reliability_diagram, plot_score_histograms, savefig

    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(300, 4, generator=g), -1)
    y = torch.randint(0, 4, (300,), generator=g)
    ax = plot_reliability_diagram(p, y, n_bins=10, title="toy")
    assert "ECE" in ax.get_title()
    assert savefig(ax, tmp_path / "rel.png").stat().st_size > 0
    ax = plot_score_histograms(
        {"in": torch.randn(200, generator=g), "out": torch.randn(100, generator=g) - 1}
    )
    assert len(ax.get_legend().get_texts()) == 2
    assert savefig(ax, tmp_path / "hist.png").stat().st_size > 0
    with pytest.raises(ValueError, match="at least one"):
        plot_score_histograms({})
