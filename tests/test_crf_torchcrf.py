"""LinearChainCRF.nll against pytorch-crf's negated log-likelihood (a test extra)."""

import pytest
import torch

from tests.crf_bruteforce import random_crf
from torchenergy.models import LinearChainCRF

torchcrf = pytest.importorskip(
    "torchcrf", reason="pytorch-crf not installed: pip install pytorch-crf==0.7.2"
)


def _pair(k, g):
    ours = random_crf(LinearChainCRF, k, g)
    ref = torchcrf.CRF(k, batch_first=True).double()
    with torch.no_grad():  # pytorch-crf's transitions[i, j] also scores the step i -> j
        ref.transitions.copy_(ours.transitions)
        ref.start_transitions.copy_(ours.start_scores)
        ref.end_transitions.copy_(ours.end_scores)
    return ours, ref


@pytest.mark.parametrize("k", [2, 5, 17])
def test_nll_matches_pytorch_crf_float64(k):
    g = torch.Generator().manual_seed(k)
    ours, ref = _pair(k, g)
    batch, steps = 9, 12
    e = 2 * torch.randn(batch, steps, k, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    mask = torch.arange(steps) < lengths[:, None]
    tags = torch.randint(0, k, (batch, steps), generator=g)
    want = -ref(e, tags, mask, reduction="none")
    got = ours.nll(e, tags, mask, reduction="none")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        ours.nll(e, tags, lengths=lengths), -ref(e, tags, mask, reduction="mean"), rtol=0, atol=1e-6
    )
    # gradients agree too
    e1 = e.clone().requires_grad_(True)
    e2 = e.clone().requires_grad_(True)
    ours.nll(e1, tags, mask, reduction="sum").backward()
    (-ref(e2, tags, mask, reduction="sum")).backward()
    torch.testing.assert_close(e1.grad, e2.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.transitions.grad, ref.transitions.grad, rtol=0, atol=1e-6)


def test_masked_first_token_matches_pytorch_crf_on_the_shifted_batch():
    # pytorch-crf requires mask[:, 0] on; ours accepts a masked [CLS] position.
    k = 4
    g = torch.Generator().manual_seed(7)
    ours, ref = _pair(k, g)
    e = torch.randn(5, 8, k, generator=g, dtype=torch.float64)
    tags = torch.randint(0, k, (5, 8), generator=g)
    lengths = torch.tensor([8, 3, 5, 2, 7])
    mask = torch.arange(8) < lengths[:, None]
    mask[:, 0] = False
    want = -ref(e[:, 1:], tags[:, 1:], mask[:, 1:], reduction="none")
    torch.testing.assert_close(ours.nll(e, tags, mask, reduction="none"), want, rtol=0, atol=1e-6)
    dec = ours.decode(e, mask).tags
    ref_dec = ref.decode(e[:, 1:], mask[:, 1:])
    for b in range(5):
        assert dec[b, 1:][mask[b, 1:]].tolist() == ref_dec[b]
