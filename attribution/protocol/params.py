"""Protocol parameters both parties agree on at session open (hashed into the transcript).

Everything the decision depends on is here: epsilon and delta (epsilon in squared output
units, so eps / b^2 is the scale-free accuracy), the estimator, the sizes of E, the
spot-check count k, the local MSE sample count |M|, rho, the honest slack eta, the
outputs verified, and the split of delta over the failure events. With planning "pilot"
(docs/protocol.md section 6.14) the sizes rho, n_pairs, n_single and k are zero at open and
fixed after the attribution commitment from the Verifier's secret pilot M; ChallengeReveal
carries them and both parties derive E from them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from attribution.encoding import TAG_PARAMS, domain_hash
from attribution.encoding import canonical_json as _canonical_json
from attribution.errors import UsageError

ESTIMATORS = ("paper", "residual")
PRESETS = ("theory", "practical", "explicit")
MODES = ("interactive", "noninteractive", "naive")
FITS = ("interp", "nnls")
MSE_SOURCES = ("local", "delegated")
# The audited target (docs/protocol.md section 6.13): "task" audits f clipped to [-b, b];
# "committed" audits f_h = clip(f, g - R, g + R) around the committed attribution g, with
# the radius R fixed from the Verifier's secret pilot M (residual estimator only).
BANDS = ("task", "committed")
BAND_DEFAULTS = {"radius_scale": 4.5, "clip_level": 0.01}
# When the sizes are fixed (docs/protocol.md section 6.14): "fixed" at session open (from a
# hint, or given); "pilot" after the attribution commitment, from the committed
# attribution's residual on the Verifier's secret pilot M (band "committed", interactive).
PLANNINGS = ("fixed", "pilot")
# the sizes a pilot-planned session fixes after the commitment (zero at open)
PILOT_SIZED = ("rho", "n_pairs", "n_single", "k")


@dataclass(frozen=True)
class DeltaSplit:
    """Shares of delta: sampling noise (two-sided CIs), undetected corruption, and the
    one-sided upper confidence bound behind the degree->=3 bias bound."""

    noise: float = 0.5
    corruption: float = 0.25
    bias: float = 0.25


@dataclass(frozen=True)
class ProtocolParams:
    epsilon: float
    delta: float
    estimator: str = "residual"
    preset: str = "practical"
    mode: str = "interactive"
    rho: float = 0.25
    n_pairs: tuple[int, int, int] = (0, 0, 0)
    n_single: int = 0
    k: int = 0
    m: int = 0
    eta: float = 0.0
    fit: str = "interp"
    mse_source: str = "local"
    outputs: tuple[int, ...] = ()
    split: DeltaSplit = field(default_factory=DeltaSplit)
    band: str = "task"
    radius_scale: float = BAND_DEFAULTS["radius_scale"]
    clip_level: float = BAND_DEFAULTS["clip_level"]
    planning: str = "fixed"
    # planning "pilot": the most trainings (Prover's |E| plus the Verifier's k + |M|) the
    # sizes fixed after the pilot may reach (0: no cap)
    budget: int = 0

    def __post_init__(self) -> None:
        def is_int(x: object) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        def is_real(x: object) -> bool:
            return isinstance(x, int | float) and not isinstance(x, bool)

        reals = (self.epsilon, self.delta, self.rho, self.eta, self.radius_scale, self.clip_level)
        if not all(is_real(x) for x in reals):
            raise UsageError(
                "epsilon, delta, rho, eta, radius_scale and clip_level must be numbers"
            )
        sizes = (*self.n_pairs, self.n_single, self.k, self.m, self.budget)
        if len(self.n_pairs) != 3 or not all(is_int(x) for x in sizes):
            raise UsageError("n_pairs must be 3 integers; n_single, k, m and budget integers")
        if not all(is_int(o) for o in self.outputs):
            raise UsageError("outputs must be integers")
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise UsageError(f"epsilon must be > 0, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise UsageError(f"delta must lie in (0, 1), got {self.delta}")
        if self.estimator not in ESTIMATORS:
            raise UsageError(f"estimator must be one of {', '.join(ESTIMATORS)}")
        if self.preset not in PRESETS:
            raise UsageError(f"preset must be one of {', '.join(PRESETS)}")
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}")
        if self.mse_source not in MSE_SOURCES:
            raise UsageError(f"mse_source must be one of {', '.join(MSE_SOURCES)}")
        if self.band not in BANDS:
            raise UsageError(f"band must be one of {', '.join(BANDS)}")
        if self.band == "committed":
            if self.estimator != "residual" or self.mode == "naive":
                raise UsageError("band 'committed' needs the residual estimator, not naive mode")
            if self.m < 2:
                raise UsageError("band 'committed' needs a pilot of m >= 2 local trainings")
            if not (math.isfinite(self.radius_scale) and self.radius_scale >= 1):
                raise UsageError(f"radius_scale must be >= 1, got {self.radius_scale}")
            if not 0 < self.clip_level < 1:
                raise UsageError(f"clip_level must lie in (0, 1), got {self.clip_level}")
        elif (self.radius_scale, self.clip_level) != tuple(BAND_DEFAULTS.values()):
            raise UsageError("radius_scale and clip_level apply only to band 'committed'")
        if self.planning not in PLANNINGS:
            raise UsageError(f"planning must be one of {', '.join(PLANNINGS)}")
        if self.planning == "pilot":
            if self.band != "committed" or self.mode != "interactive":
                raise UsageError("planning 'pilot' needs band 'committed' and interactive mode")
        elif self.budget != 0:
            raise UsageError("budget applies only to planning 'pilot'")
        if self.fit not in FITS:
            raise UsageError(f"fit must be one of {', '.join(FITS)}")
        if not 0 < self.rho <= 0.5:
            raise UsageError(f"rho must lie in (0, 0.5] (2 rho <= 1), got {self.rho}")
        if min(self.n_pairs) < 0 or min(self.n_single, self.k, self.m, self.budget) < 0:
            raise UsageError("sizes must be non-negative")
        if not 0 <= self.eta < self.epsilon / 2:
            raise UsageError("eta must lie in [0, epsilon/2)")
        shares = (self.split.noise, self.split.corruption, self.split.bias)
        if not all(is_real(x) and 0 <= x <= 1 for x in shares):  # False for NaN
            raise UsageError("the delta split must be three numbers in [0, 1]")
        if abs(sum(shares) - 1.0) > 1e-12:
            raise UsageError("the delta split must sum to 1")

    @property
    def n_challenges(self) -> int:
        return 2 * sum(self.n_pairs) + self.n_single

    @property
    def total_trainings(self) -> int:
        """Prover's |E| plus the Verifier's k + |M| (interactive mode)."""
        return self.n_challenges + self.k + self.m

    def opening(self) -> ProtocolParams:
        """The parameters as sent at session open: for planning "pilot" the sizes of
        :data:`PILOT_SIZED` are zero (rho 0.25), fixed only after the pilot
        (:meth:`sized`); otherwise ``self``."""
        if self.planning != "pilot":
            return self
        return replace(self, rho=0.25, n_pairs=(0, 0, 0), n_single=0, k=0)

    def sized(self, sizes: dict[str, Any]) -> ProtocolParams:
        """These opening parameters with the sizes a pilot fixed (exactly the keys of
        :data:`PILOT_SIZED`, JSON-typed as in :meth:`to_dict`); raises UsageError."""
        if self.planning != "pilot" or self != self.opening():
            raise UsageError("only the opening parameters of a pilot-planned session are sized")
        if not isinstance(sizes, dict) or set(sizes) != set(PILOT_SIZED):
            raise UsageError(f"the pilot's sizes must be exactly {', '.join(PILOT_SIZED)}")
        d = self.to_dict()
        d.update(sizes)
        return ProtocolParams.from_dict(d)

    def size_fields(self) -> dict[str, Any]:
        """The values of :data:`PILOT_SIZED`, JSON-typed (what ChallengeReveal carries)."""
        d = self.to_dict()
        return {name: d[name] for name in PILOT_SIZED}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_pairs"] = list(self.n_pairs)
        d["outputs"] = list(self.outputs)
        if self.band == "task":
            # the band fields appear only when used, so the encoding of every "task"-band
            # session is the one of protocol version 1 (docs/protocol.md section 3)
            for name in ("band", *BAND_DEFAULTS):
                del d[name]
        if self.planning == "fixed":
            del d["planning"], d["budget"]  # likewise: absent unless "pilot"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProtocolParams:
        try:
            return cls(
                **{
                    **d,
                    "n_pairs": tuple(d["n_pairs"]),
                    "outputs": tuple(d["outputs"]),
                    "split": DeltaSplit(**d["split"]),
                }
            )
        except (KeyError, TypeError, OverflowError) as exc:
            # OverflowError: a real number sent as an integer beyond the float range
            raise UsageError(f"malformed protocol parameters: {exc}") from exc

    def canonical_json(self) -> bytes:
        # allow_nan=True keeps json.dumps' historical bytes; fields are validated finite
        return _canonical_json(self.to_dict(), allow_nan=True)

    def digest(self) -> bytes:
        return domain_hash(TAG_PARAMS, self.canonical_json())
