"""Linear-chain conditional random field: an energy-based model over tag sequences.

For emissions ``e`` (B, T, K) from any network and a tagging ``y`` of the selected positions
``t_1 < ... < t_L`` of a sequence, the score and the energy are

    score(x, y) = start[y_1] + Σ_l e[t_l, y_l] + Σ_l A[y_{l-1}, y_l] + end[y_L],
    E(x, y) = −score(x, y),      p(y | x) = exp(−E(x, y)) / Z(x).

``A[i, j]`` scores the step from tag ``i`` to tag ``j`` (pytorch-crf's convention). Every
inference method is exact: ``log Z`` by the forward algorithm (one batched loop over T), the best
tagging by Viterbi, the k best by list Viterbi, marginals by autograd of ``log Z``, exact samples
by forward-filtering backward-sampling, the entropy by autograd of ``log Z`` along the
temperature. Hard constraints (``allowed_transitions``) are ``−inf`` scores honoured by all of
them. Masks may start with False (``[CLS]``), end with padding, or have gaps (see
:mod:`torchenergy.models.crf.batch`); results at unselected positions are ``-1`` (tags) or 0
(marginals).

Reference: J. Lafferty, A. McCallum, F. Pereira, "Conditional random fields: probabilistic
models for segmenting and labeling sequence data", ICML 2001; A. Rush, "Torch-Struct: deep
structured prediction library", ACL 2020 (marginals by autograd).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from torchenergy._checks import check_positive_int
from torchenergy.models.crf.batch import (
    PAD_TAG,
    Packed,
    check_reduction,
    check_tags,
    pack,
    reduce_loss,
    unpack,
)
from torchenergy.models.crf.constraints import TransitionConstraints
from torchenergy.models.crf.dp import NEG, forward_alphas, kbest_viterbi, sample_backward, viterbi

__all__ = ["Decoded", "LinearChainCRF"]


class Decoded(NamedTuple):
    """Taggings and their scores.

    Attributes:
        tags: long tags, ``-1`` at unselected positions and for taggings that do not exist;
            (B, T) from ``decode``, (k, B, T) from ``nbest``.
        scores: their scores ``−E(x, y)``: (B,) or (k, B), ``-inf`` where no allowed tagging exists.
    """

    tags: Tensor
    scores: Tensor


class LinearChainCRF(nn.Module):
    """Linear-chain CRF head with exact, batched, tensor-valued inference.

    Shapes: emissions (B, T, K), mask (B, T) bool (or ``lengths`` (B,)), tags (B, T) long.

    Args:
        num_tags: K, the number of tags.
        allowed_transitions: optional hard constraints: a (K, K) bool tensor (``[i, j]`` True when
            ``j`` may follow ``i``) or a :class:`TransitionConstraints` (also first/last tags),
            e.g. from :func:`bio_constraints`. Forbidden moves have energy ``+inf``.

    Attributes:
        transitions: (K, K) parameter, ``transitions[i, j]`` scores ``i -> j``.
        start_scores: (K,) parameter, score of the first tag.
        end_scores: (K,) parameter, score of the last tag.

    Calling the module returns the loss :meth:`nll` (positive), never a log-likelihood.

    Example:
        >>> crf = LinearChainCRF(3)
        >>> e = torch.randn(2, 4, 3); tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, -1]])
        >>> mask = tags >= 0
        >>> loss = crf.nll(e, tags, mask)
        >>> bool(loss >= 0), crf.decode(e, mask).tags.shape
        (True, torch.Size([2, 4]))
    """

    def __init__(
        self,
        num_tags: int,
        *,
        allowed_transitions: Tensor | TransitionConstraints | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("num_tags", num_tags)
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start_scores = nn.Parameter(torch.zeros(num_tags))
        self.end_scores = nn.Parameter(torch.zeros(num_tags))
        trans_ok = torch.ones(num_tags, num_tags, dtype=torch.bool)
        start_ok = torch.ones(num_tags, dtype=torch.bool)
        end_ok = torch.ones(num_tags, dtype=torch.bool)
        if allowed_transitions is not None:
            if isinstance(allowed_transitions, TransitionConstraints):
                trans_ok, start_ok, end_ok = allowed_transitions
            elif isinstance(allowed_transitions, Tensor):
                trans_ok = allowed_transitions
            else:
                raise TypeError(
                    "allowed_transitions must be a (K, K) bool tensor or TransitionConstraints, "
                    f"got {type(allowed_transitions).__name__}"
                )
            for name, val, shape in (
                ("allowed_transitions", trans_ok, (num_tags, num_tags)),
                ("allowed start tags", start_ok, (num_tags,)),
                ("allowed end tags", end_ok, (num_tags,)),
            ):
                if not isinstance(val, Tensor) or val.dtype != torch.bool or val.shape != shape:
                    got = (tuple(val.shape), val.dtype) if isinstance(val, Tensor) else type(val)
                    raise ValueError(f"{name} must be a bool tensor of shape {shape}, got {got}")
            if not bool(start_ok.any()) or not bool(end_ok.any()):
                raise ValueError("the constraints allow no first tag or no last tag")
        self.register_buffer("allowed_transitions", trans_ok.clone())
        self.register_buffer("allowed_start", start_ok.clone())
        self.register_buffer("allowed_end", end_ok.clone())

    def extra_repr(self) -> str:
        constrained = not bool(self.allowed_transitions.all() and self.allowed_start.all())
        return f"num_tags={self.num_tags}, constrained={constrained}"

    # -- potentials -------------------------------------------------------------------------
    def potentials(
        self, dtype: torch.dtype, *, forbidden: float = NEG
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Transition, start and end scores in ``dtype`` with forbidden entries set to ``forbidden``."""
        return (
            self.transitions.to(dtype).masked_fill(~self.allowed_transitions, forbidden),
            self.start_scores.to(dtype).masked_fill(~self.allowed_start, forbidden),
            self.end_scores.to(dtype).masked_fill(~self.allowed_end, forbidden),
        )

    def _pack(self, emissions: Tensor, mask: Tensor | None, lengths: Tensor | None) -> Packed:
        return pack(emissions, mask, lengths, self.num_tags)

    # -- scores, energy, loss ---------------------------------------------------------------
    def score(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """Score ``−E(x, y)`` of the given taggings, (B,); ``-inf`` if a forbidden move is used."""
        p = self._pack(emissions, mask, lengths)
        return self._score_packed(p, check_tags(tags, p, self.num_tags))

    def _score_packed(self, p: Packed, tags: Tensor) -> Tensor:
        trans, start, end = self.potentials(p.emissions.dtype)
        e, m = p.emissions, p.mask
        emit = e.gather(2, tags.unsqueeze(2)).squeeze(2)
        total = start[tags[0]] + torch.where(m, emit, 0.0).sum(0)
        if e.shape[0] > 1:
            total = total + torch.where(m[1:], trans[tags[:-1], tags[1:]], 0.0).sum(0)
        last = tags.gather(0, (p.lengths - 1).unsqueeze(0)).squeeze(0)
        total = total + end[last]
        return torch.where(total > NEG / 2, total, float("-inf"))

    def energy(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """Energy ``E(x, y) = −score(x, y)`` of the given taggings, (B,) (``+inf`` if forbidden)."""
        return -self.score(emissions, tags, mask, lengths=lengths)

    def log_partition(
        self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Tensor | None = None
    ) -> Tensor:
        """``log Z(x) = logsumexp_y score(x, y)`` by the forward algorithm, (B,), differentiable.

        ``-inf`` when the constraints leave a sequence no allowed tagging.
        """
        return self._log_z_packed(self._pack(emissions, mask, lengths))

    def _log_z_packed(self, p: Packed) -> Tensor:
        trans, start, end = self.potentials(p.emissions.dtype)
        log_z, _ = forward_alphas(p.emissions, p.mask, trans, start, end)
        return torch.where(log_z > NEG / 2, log_z, float("-inf"))

    def nll(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """Negative conditional log-likelihood ``E(x, y) + log Z(x) = −log p(y | x) >= 0``.

        Args:
            emissions: (B, T, K). tags: (B, T) (any value at unselected positions).
            mask: (B, T) bool, or ``lengths`` (B,).
            reduction: ``"mean"`` over sequences, ``"sum"``, ``"none"`` (B,), or
                ``"token_mean"`` (sum divided by the number of selected tokens).

        Returns:
            The loss (scalar, or (B,) for ``"none"``); ``+inf`` for a tagging the constraints forbid.
        """
        check_reduction(reduction)
        p = self._pack(emissions, mask, lengths)
        packed_tags = check_tags(tags, p, self.num_tags)
        score = self._score_packed(p, packed_tags)
        loss = (self._log_z_packed(p) - score).clamp_min(0.0)
        loss = torch.where(torch.isneginf(score), float("inf"), loss)  # p(y | x) = 0
        return reduce_loss(loss, reduction, p.lengths)

    def forward(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """The training loss :meth:`nll` (positive; minimise it)."""
        return self.nll(emissions, tags, mask, lengths=lengths, reduction=reduction)

    # -- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, emissions: Tensor, mask: Tensor | None = None, *, lengths: Tensor | None = None
    ) -> Decoded:
        """Most likely tagging (minimum energy) by batched Viterbi.

        Returns:
            :class:`Decoded` with tags (B, T) (``-1`` outside the sequences) and scores (B,)
            (detached; ``-inf`` if no allowed tagging exists).
        """
        p = self._pack(emissions, mask, lengths)
        trans, start, end = self.potentials(p.emissions.dtype, forbidden=float("-inf"))
        tags, scores = viterbi(p.emissions, p.mask, trans, start, end)
        out = unpack(tags.t(), p).masked_fill(torch.isneginf(scores).unsqueeze(1), PAD_TAG)
        return Decoded(out, scores)

    @torch.no_grad()
    def nbest(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        k: int = 1,
        *,
        lengths: Tensor | None = None,
    ) -> Decoded:
        """The ``k`` best taggings of each sequence, best first (list Viterbi).

        Returns:
            :class:`Decoded` with tags (k, B, T) and scores (k, B); where a sequence has fewer
            than ``k`` allowed taggings the extra rows have score ``-inf`` and tags ``-1``.
        """
        check_positive_int("k", k)
        p = self._pack(emissions, mask, lengths)
        trans, start, end = self.potentials(p.emissions.dtype, forbidden=float("-inf"))
        tags, scores = kbest_viterbi(p.emissions, p.mask, trans, start, end, k)
        scores = scores.t()  # (k, B)
        out = unpack(tags.permute(2, 1, 0), p)  # (k, B, T)
        return Decoded(out.masked_fill(torch.isneginf(scores).unsqueeze(2), PAD_TAG), scores)

    def marginals(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        create_graph: bool = False,
    ) -> Tensor:
        """Posterior marginals ``p(y_t = k | x) = ∂ log Z / ∂ e[t, k]``, (B, T, K).

        Rows sum to 1 at selected positions and are 0 elsewhere. Detached unless
        ``create_graph=True`` (then differentiable with respect to emissions and parameters).
        """
        with torch.enable_grad():
            e = emissions if create_graph else emissions.detach().requires_grad_(True)
            if not e.requires_grad:
                e = e.detach().requires_grad_(True)
            log_z = self.log_partition(e, mask, lengths=lengths)
            (grad,) = torch.autograd.grad(log_z.sum(), e, create_graph=create_graph)
        return grad

    def entropy(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        *,
        lengths: Tensor | None = None,
        create_graph: bool = False,
    ) -> Tensor:
        """Entropy ``H[p(y | x)] = log Z − E_p[score]`` of each sequence's tag distribution, (B,).

        ``E_p[score] = d log Z(β) / dβ`` at ``β = 1``, where ``Z(β)`` scales every (allowed)
        score by ``β``; computed by autograd. Detached unless ``create_graph=True``.
        """
        p = self._pack(emissions, mask, lengths)
        batch = p.lengths.shape[0]
        dtype = p.emissions.dtype
        with torch.enable_grad():
            beta = torch.ones(batch, dtype=dtype, device=p.emissions.device, requires_grad=True)
            e = p.emissions if create_graph else p.emissions.detach()
            trans = self.transitions.to(dtype)
            start, end = self.start_scores.to(dtype), self.end_scores.to(dtype)
            if not create_graph:
                trans, start, end = trans.detach(), start.detach(), end.detach()
            b = beta.view(batch, 1, 1)
            trans = (b * trans).masked_fill(~self.allowed_transitions, NEG)
            start = (b.view(batch, 1) * start).masked_fill(~self.allowed_start, NEG)
            end = (b.view(batch, 1) * end).masked_fill(~self.allowed_end, NEG)
            log_z, _ = forward_alphas(e * beta.view(1, batch, 1), p.mask, trans, start, end)
            (mean_score,) = torch.autograd.grad(log_z.sum(), beta, create_graph=create_graph)
        ent = log_z - mean_score
        return ent if create_graph else ent.detach()

    @torch.no_grad()
    def sample(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        n: int = 1,
        *,
        lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact samples ``y ~ p(y | x)`` by forward-filtering backward-sampling.

        Returns:
            (n, B, T) long tags, ``-1`` outside the sequences.

        Raises:
            ValueError: if a sequence has no allowed tagging (nothing to sample).
        """
        check_positive_int("n", n)
        p = self._pack(emissions, mask, lengths)
        trans, start, end = self.potentials(p.emissions.dtype)
        log_z, alphas = forward_alphas(p.emissions, p.mask, trans, start, end, keep_all=True)
        if bool((log_z <= NEG / 2).any()):
            raise ValueError("cannot sample: a sequence has no tagging allowed by the constraints")
        draws = sample_backward(alphas, p.mask, trans, end, n, generator=generator)  # (T', n, B)
        return unpack(draws.permute(1, 2, 0), p)
