"""Exact conversions between velocity, score, noise and data predictions, finite at both ends.

For ``x_t = α x_data + σ ε`` write ``x̂ = E[x_data | x_t]``, ``ε̂ = E[ε | x_t]`` (so
``x_t = α x̂ + σ ε̂``). Every prediction is an affine function of the pair::

    score     s = −ε̂ / σ
    velocity  v = α' x̂ + σ' ε̂          (the probability-flow / marginal velocity)
    pair from v:  x̂ = (σ' x − σ v)/det,  ε̂ = (α v − α' x)/det,   det = α σ' − σ α'

Two ends need care, and are handled exactly rather than with an endpoint epsilon:

* **data end, σ = 0** (linear, cosine, VP at t = 1): ``ε̂ = 0`` for any data law with a density
  (x_1 does not depend on ε), so ``x̂ = x/α``; the score, ``−ε̂/σ``, is a 0/0 limit and is taken by
  L'Hôpital's rule in t through forward-mode derivatives of the model (``torch.func.jvp``).
* **noise end, α = 0** (linear, cosine at t = 0): ``ε̂ = x/σ`` exactly, and ``x̂ = (x − σ ε̂)/α``
  is a 0/0 limit (it equals E[x_data]) that a noise or score model carries only through its time
  derivative: ``x̂ = −(σ' ε̂ + σ ∂ₜε̂)/α'``, again by forward-mode differentiation in t.

The one combination that is not identifiable from a model smooth in t is the score from a noise
prediction on the VP path at t = 1 (σ ~ sqrt(1 − t) there); it raises, and the samplers take
their last step with the data prediction instead (see :class:`~torchenergy.diffusion.FlowSampler`).

Reference: Kingma et al. (2021), "Variational diffusion models" (the (x̂, ε̂) parameterisation);
Ma et al. (2024), "SiT" (velocity/score/noise conversions).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import jvp

from torchenergy.diffusion.interpolants import Interpolant, _bc, get_interpolant

__all__ = ["PREDICTIONS", "ModelField", "as_field", "convert"]

#: What a network may predict.
PREDICTIONS = ("velocity", "score", "noise", "data")

Model = Callable[..., Tensor]


def _check_prediction(name: str, value: str) -> None:
    if value not in PREDICTIONS:
        raise ValueError(f"{name} must be one of {PREDICTIONS}, got {value!r}")


def _as_time(t: Tensor | float, x: Tensor) -> Tensor:
    """Per-row times (C,) in x's dtype/device."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


def _pair_regular(value: Tensor, x: Tensor, t: Tensor, interp: Interpolant, source: str):
    """(x̂, ε̂) where the formulas are regular; rows needing a limit are returned in ``need``."""
    c = interp.coefficients(t)
    a, s, da, ds = (_bc(v, x) for v in c[:4])
    one = torch.ones_like(a)
    if source == "data":
        xh = value
        pos = s > 0
        eh = torch.where(pos, (x - a * xh) / torch.where(pos, s, one), torch.zeros_like(x))
        need = torch.zeros_like(t, dtype=torch.bool)
    elif source in ("noise", "score"):
        eh = value if source == "noise" else -s * value
        pos = a > 0
        xh = torch.where(pos, (x - s * eh) / torch.where(pos, a, one), torch.zeros_like(x))
        need = c.alpha <= 0
    else:  # velocity
        fin = torch.isfinite(ds)
        ds_f = torch.where(fin, ds, -one)
        det = a * ds_f - s * da
        xh = torch.where(fin, (ds_f * x - s * value) / det, x / torch.where(a > 0, a, one))
        eh = torch.where(fin, (a * value - da * x) / det, torch.zeros_like(x))
        need = torch.zeros_like(t, dtype=torch.bool)
    return xh, eh, need


def convert(
    value: Tensor,
    x: Tensor,
    t: Tensor | float,
    interpolant: Interpolant | str,
    source: str,
    target: str,
) -> Tensor:
    """Convert a prediction ``value`` at ``(x, t)`` from ``source`` to ``target`` exactly.

    Pointwise and finite wherever the target is determined by the value alone (both ends
    included: ``ε̂ = 0`` at σ = 0, the 2 × 2 solve for velocities, ``σσ'`` for VP). The two
    0/0 limits that need the model's time derivative (x̂ from noise/score where α = 0, the score
    from non-score predictions where σ = 0) raise ``ValueError``: use :class:`ModelField`.

    Shapes: ``value``, ``x`` (C, *D); ``t`` scalar or (C,) -> (C, *D).

    Example:
        >>> x, t = torch.tensor([[1.0, -2.0]]), torch.tensor([0.25])
        >>> convert(torch.tensor([[0.5, 0.5]]), x, t, "linear", "velocity", "data").tolist()
        [[1.375, -1.625]]
    """
    _check_prediction("source", source)
    _check_prediction("target", target)
    interp = get_interpolant(interpolant)
    t = _as_time(t, x)
    if source == target:
        return value
    xh, eh, need = _pair_regular(value, x, t, interp, source)
    if bool(need.any()) and target in ("velocity", "data"):
        raise ValueError(
            f"converting {source!r} to {target!r} at alpha(t) = 0 (t = {t[need][0].item()}) is a "
            "0/0 limit that needs the model's time derivative; use ModelField"
        )
    return _from_pair(xh, eh, value, x, t, interp, source, target, None)


def _from_pair(xh, eh, value, x, t, interp, source, target, limit_score):
    c = interp.coefficients(t)
    a, s, da, ds, sds = (_bc(v, x) for v in c)
    one = torch.ones_like(a)
    if target == "data":
        return xh
    if target == "noise":
        return eh
    if target == "velocity":
        if source == "velocity":
            return value
        fin = torch.isfinite(ds)
        v = da * xh + torch.where(fin, ds, one) * eh
        if bool((~fin).any()):
            if source != "score":
                raise ValueError(
                    f"the velocity from a {source!r} prediction at t where sigma'(t) is infinite "
                    "(VP at t = 1) needs the data score; take the last step by the data prediction"
                )
            v = torch.where(fin, v, da * xh - sds * value)
        return v
    # target == "score"
    if source == "score":
        return value
    if source == "velocity":
        den = a * sds - s * s * da  # σ·det, finite everywhere
        ok = den != 0
        out = torch.where(ok, -(a * value - da * x) / torch.where(ok, den, one), 0.0 * x)
    elif source == "noise":
        ok = s > 0
        out = torch.where(ok, -eh / torch.where(ok, s, one), 0.0 * x)
    else:  # data
        ok = s > 0
        out = torch.where(ok, -(x - a * xh) / torch.where(ok, s * s, one), 0.0 * x)
    bad = ~ok.reshape(x.shape[0], -1)[:, 0]
    if bool(bad.any()):
        if limit_score is None:
            raise ValueError(
                f"the score from a {source!r} prediction at sigma(t) = 0 is a 0/0 limit that "
                "needs the model's time derivative; use ModelField"
            )
        out = out.clone()
        out[bad] = limit_score(bad)
    return out


def _derivatives(fn: Callable[[Tensor], Tensor], t: Tensor, order: int) -> Tensor:
    """The ``order``-th derivative of ``fn`` in t (1 or 2), by forward-mode AD."""
    ones = torch.ones_like(t)

    def d1(u: Tensor) -> Tensor:
        return jvp(fn, (u,), (ones,))[1]

    if order == 1:
        return d1(t)
    return jvp(d1, (t,), (ones,))[1]


def _quotient_limit(num: Callable, den: Callable, t: Tensor, like: Tensor) -> Tensor:
    """``lim num(u)/den(u)`` as u -> t where both vanish (L'Hôpital, first then second order)."""
    for order in (1, 2):
        dn = _derivatives(den, t, order)
        if bool((torch.isfinite(dn) & (dn != 0)).all()):
            return _derivatives(num, t, order) / _bc(dn, like)
    raise ValueError(
        f"no finite L'Hopital limit at t = {t.tolist()} (denominator is flat or singular)"
    )


class ModelField:
    """A network's output read as any prediction, exactly and finitely on all of [0, 1].

    ``model(x, t)`` (or ``model(x, t, y)`` with labels) returns the ``prediction`` (C, *D); t is
    (C,). The methods return the other predictions by the formulas of :func:`convert`, and the
    0/0 limits at the ends by L'Hôpital's rule in t through ``torch.func.jvp`` on the model
    (so the model must be differentiable in t; every network in this package is).

    Example:
        >>> field = ModelField(lambda x, t: -x, "linear", "score")  # N(0, 1) noise, N(0, I) data
        >>> field.velocity(torch.ones(2, 3), torch.tensor(0.0)).shape
        torch.Size([2, 3])
    """

    def __init__(self, model: Model, interpolant: Interpolant | str, prediction: str) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable (x, t) -> (C, *D), got {type(model).__name__}")
        _check_prediction("prediction", prediction)
        self.model = model
        self.interpolant = get_interpolant(interpolant)
        self.prediction = prediction

    def __call__(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The raw model output (C, *D)."""
        out = self.model(x, t) if y is None else self.model(x, t, y)
        if out.shape != x.shape:
            raise ValueError(f"model must return shape {tuple(x.shape)}, got {tuple(out.shape)}")
        return out

    def _rows(self, x: Tensor, y: Tensor | None, mask: Tensor):
        xm = x[mask]
        ym = None if y is None else y[mask]
        return xm, ym

    def _eps_fn(self, xm: Tensor, ym: Tensor | None) -> Callable[[Tensor], Tensor]:
        interp = self.interpolant

        def eps(u: Tensor) -> Tensor:
            out = self(xm, u, ym)
            if self.prediction == "noise":
                return out
            if self.prediction == "score":
                return -_bc(interp.coefficients(u).sigma, xm) * out
            return _pair_regular(out, xm, u, interp, self.prediction)[1]

        return eps

    def denoise(self, x: Tensor, t: Tensor | float, y: Tensor | None = None):
        """``(x̂, ε̂)`` = (E[x_data | x_t], E[ε | x_t]), each (C, *D)."""
        t = _as_time(t, x)
        out = self(x, t, y)
        xh, eh, need = _pair_regular(out, x, t, self.interpolant, self.prediction)
        if bool(need.any()):
            xm, ym = self._rows(x, y, need)
            eps = self._eps_fn(xm, ym)
            interp = self.interpolant

            def num(u: Tensor) -> Tensor:
                return xm - _bc(interp.coefficients(u).sigma, xm) * eps(u)

            def den(u: Tensor) -> Tensor:
                return interp.coefficients(u).alpha

            xh = xh.clone()
            xh[need] = _quotient_limit(num, den, t[need], xm)
        return xh, eh, out

    def data(self, x: Tensor, t: Tensor | float, y: Tensor | None = None) -> Tensor:
        """x̂ = E[x_data | x_t], (C, *D)."""
        return self.denoise(x, t, y)[0]

    def noise(self, x: Tensor, t: Tensor | float, y: Tensor | None = None) -> Tensor:
        """ε̂ = E[ε | x_t], (C, *D)."""
        return self.denoise(x, t, y)[1]

    def velocity(self, x: Tensor, t: Tensor | float, y: Tensor | None = None) -> Tensor:
        """Probability-flow velocity ``v = α' x̂ + σ' ε̂`` (dx/dt towards data), (C, *D)."""
        t = _as_time(t, x)
        if self.prediction == "velocity":
            return self(x, t, y)
        pair = self.denoise(x, t, y)
        return self._velocity_from(pair, x, t, y)

    def _velocity_from(self, pair, x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        xh, eh, out = pair
        c = self.interpolant.coefficients(t)
        inf = ~torch.isfinite(c.d_sigma)
        if self.prediction == "data" and bool(inf.any()):
            # σ' = ∞ (VP at t = 1): v = α' x̂ − σσ' s with the score's limit
            s = self._score_from(pair, x, t, y)
            fin = _bc(~inf, x)
            v_fin = (
                _bc(c.d_alpha, x) * xh
                + _bc(torch.where(inf, 0.0 * c.d_sigma.nan_to_num(), c.d_sigma), x) * eh
            )
            return torch.where(fin, v_fin, _bc(c.d_alpha, x) * xh - _bc(c.sigma_d_sigma, x) * s)
        return _from_pair(xh, eh, out, x, t, self.interpolant, self.prediction, "velocity", None)

    def score(self, x: Tensor, t: Tensor | float, y: Tensor | None = None) -> Tensor:
        """Score ``∇ₓ log p_t(x) = −ε̂/σ``, (C, *D)."""
        t = _as_time(t, x)
        if self.prediction == "score":
            return self(x, t, y)
        return self._score_from(self.denoise(x, t, y), x, t, y)

    def velocity_and_score(self, x: Tensor, t: Tensor | float, y: Tensor | None = None):
        """``(v, s)`` from one model evaluation (plus forward-mode limits at the ends)."""
        t = _as_time(t, x)
        pair = self.denoise(x, t, y)
        out = pair[2]
        v = out if self.prediction == "velocity" else self._velocity_from(pair, x, t, y)
        s = out if self.prediction == "score" else self._score_from(pair, x, t, y)
        return v, s

    def velocity_identifiable(self, t: float) -> bool:
        """False where the velocity needs the data score that the prediction lacks (VP, t = 1)."""
        c = self.interpolant.coefficients(torch.tensor(float(t), dtype=torch.float64))
        return bool(torch.isfinite(c.d_sigma)) or self.prediction != "noise"

    def score_identifiable(self, t: float) -> bool:
        """False only for a noise prediction where σ = 0 and σ' is infinite (VP, t = 1)."""
        c = self.interpolant.coefficients(torch.tensor(float(t), dtype=torch.float64))
        return not (
            self.prediction == "noise"
            and float(c.sigma) == 0.0
            and not bool(torch.isfinite(c.d_sigma))
        )

    def _score_from(self, pair, x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        xh, eh, out = pair
        interp = self.interpolant

        def limit(mask: Tensor) -> Tensor:
            xm, ym = self._rows(x, y, mask)
            tm = t[mask]
            if self.prediction == "velocity":

                def num(u: Tensor) -> Tensor:
                    c = interp.coefficients(u)
                    return -(_bc(c.alpha, xm) * self(xm, u, ym) - _bc(c.d_alpha, xm) * xm)

                def den(u: Tensor) -> Tensor:
                    c = interp.coefficients(u)
                    return c.alpha * c.sigma_d_sigma - c.sigma**2 * c.d_alpha

            elif self.prediction == "data":

                def num(u: Tensor) -> Tensor:
                    return -(xm - _bc(interp.coefficients(u).alpha, xm) * self(xm, u, ym))

                def den(u: Tensor) -> Tensor:
                    return interp.variance(u)

            else:
                ds = interp.coefficients(tm).d_sigma
                if not bool(torch.isfinite(ds).all()):
                    raise ValueError(
                        "the score from a noise prediction at t = 1 of a path with sigma'(1) "
                        f"infinite ({interp!r}) is not identifiable from a model smooth in t"
                    )
                eps = self._eps_fn(xm, ym)

                def num(u: Tensor) -> Tensor:
                    return -eps(u)

                def den(u: Tensor) -> Tensor:
                    return interp.coefficients(u).sigma

            return _quotient_limit(num, den, tm, xm)

        return _from_pair(xh, eh, out, x, t, interp, self.prediction, "score", limit)


def as_field(
    model: Model | ModelField,
    interpolant: Interpolant | str | None = None,
    prediction: str = "velocity",
) -> ModelField:
    """Wrap ``model`` as a :class:`ModelField` (pass-through for a field)."""
    if isinstance(model, ModelField):
        return model
    if interpolant is None:
        raise ValueError("interpolant is required when model is not a ModelField")
    return ModelField(model, interpolant, prediction)
