"""What labels and compute cost, in integer micro-dollars, before and after spending.

Pure functions over frozen dataclasses; nothing here reads or writes anything. Counts, seconds and
FLOPs may be floats, money never is: each cost is computed exactly (a ``Fraction`` of the
float's shortest repr) and rounded once, up, at the end, so a cost is never rounded down.

Label prices follow Kang, Xu and Ritter (ACL 2023): the paper's per-label prices are in
:data:`PAPER_LABEL_PRICES`. Compute in simulation is priced by FLOPs on a reference GPU
(:class:`FlopPricing`); real runs are metered in device-seconds and priced by :class:`DevicePrice`.
A prompted LLM is priced per token, as providers bill it (:class:`TokenPrice`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from numbers import Real

from budget.money import to_micro

__all__ = [
    "PAPER_LABEL_PRICES",
    "DEFAULT_DEVICE_PRICES",
    "LabelPrice",
    "DevicePrice",
    "FlopPricing",
    "TokenPrice",
    "label_cost",
    "token_cost",
    "label_cost_from_time",
    "compute_cost",
    "flop_seconds",
    "flop_cost",
]

#: The paper's price of one label per task, in micro-dollars (Kang et al. 2023).
PAPER_LABEL_PRICES: dict[str, int] = {
    "stanceosaurus": to_micro("0.364"),
    "multipit_id": to_micro("0.200"),
    "wlp": to_micro("0.260"),
    "fever": to_micro("0.129"),
    "multipit_gen": to_micro("0.371"),
    "nq": to_micro("0.129"),
}

#: Dollars per device-hour by device kind (``torch.device.type``); pass to :meth:`DevicePrice.from_dollars`.
DEFAULT_DEVICE_PRICES: dict[str, str] = {"cpu": "0.10", "cuda": "2.50", "mps": "0.50"}

_SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class LabelPrice:
    """The price of one label: a fixed price per label, or a wage times the time a label takes.

    Build one with :meth:`per_label` or :meth:`hourly`. In hourly mode ``seconds_per_label`` is the
    estimate used before buying; the settlement uses the annotators' real lead time
    (:func:`label_cost_from_time`).

    Parameters
    ----------
    per_label_micro : int or None
        Price of one label by one annotator, micro-dollars.
    hourly_wage_micro : int or None
        Annotator wage per hour, micro-dollars.
    seconds_per_label : float or None
        Estimated seconds one annotator spends on one item (hourly mode).
    """

    per_label_micro: int | None = None
    hourly_wage_micro: int | None = None
    seconds_per_label: float | None = None

    @classmethod
    def per_label(cls, dollars: Decimal | str | int) -> LabelPrice:
        """A fixed price per label, e.g. ``LabelPrice.per_label("0.364")``."""
        return cls(per_label_micro=to_micro(dollars))

    @classmethod
    def hourly(cls, wage_dollars: Decimal | str | int, *, seconds_per_label: float) -> LabelPrice:
        """A wage and seconds per label, e.g. ``LabelPrice.hourly("15", seconds_per_label=20)``."""
        return cls(hourly_wage_micro=to_micro(wage_dollars), seconds_per_label=seconds_per_label)


@dataclass(frozen=True)
class DevicePrice:
    """Price of one device-hour for each device kind, in micro-dollars.

    Parameters
    ----------
    per_hour_micro : Mapping of str to int
        Device kind (``"cpu"``, ``"cuda"``, ``"mps"``) to micro-dollars per hour.
    """

    per_hour_micro: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_dollars(cls, prices: Mapping[str, Decimal | str | int]) -> DevicePrice:
        """Parse ``{"cpu": "0.10", "cuda": "2.50"}`` (dollars per hour) with :func:`~budget.money.to_micro`."""
        return cls(per_hour_micro={kind: to_micro(dollars) for kind, dollars in prices.items()})


@dataclass(frozen=True)
class FlopPricing:
    """Compute priced by FLOPs on a reference GPU, for simulated runs.

    Parameters
    ----------
    reference_gpu : str, default="A100-80GB"
        Name of the GPU the price and peak refer to (a label for people; not used in the arithmetic).
    peak_flops : float, default=312e12
        Peak FLOP/s of the reference GPU (A100 bf16 dense).
    utilisation : float, default=0.4
        Fraction of the peak a training or inference job achieves, in (0, 1].
    price_per_hour : int, default=2_000_000
        Rental price of one reference GPU-hour, micro-dollars ($2.00).
    """

    reference_gpu: str = "A100-80GB"
    peak_flops: float = 312e12
    utilisation: float = 0.4
    price_per_hour: int = to_micro("2.00")


@dataclass(frozen=True)
class TokenPrice:
    """What a prompted LLM costs per token, as providers list it: dollars per million input (prompt) tokens
    and per million output tokens. A dollar per million tokens is a micro-dollar a token, so the prices are
    kept as micro-dollars per token, exactly (a ``Decimal``: $0.15 a million is 0.15 micro-dollars a token).

    Parameters
    ----------
    input_micro : Decimal
        Micro-dollars per input token.
    output_micro : Decimal
        Micro-dollars per output token.
    """

    input_micro: Decimal = Decimal(0)
    output_micro: Decimal = Decimal(0)

    @classmethod
    def per_million(cls, input_dollars: Decimal | str | int, output_dollars: Decimal | str | int) -> TokenPrice:
        """From dollars per million tokens, e.g. ``TokenPrice.per_million("0.15", "0.60")``."""
        prices = (Decimal(str(input_dollars)), Decimal(str(output_dollars)))
        if not all(p.is_finite() and p >= 0 for p in prices):
            raise ValueError(f"Token prices must be dollar amounts >= 0; got {input_dollars!r}, {output_dollars!r}.")
        return cls(*prices)


def token_cost(price: TokenPrice, input_tokens: int, output_tokens: int, scale: float = 1.0) -> int:
    """Micro-dollars for ``input_tokens`` and ``output_tokens`` (times ``scale``, a study's price regime),
    rounded up once.

    Examples
    --------
    >>> token_cost(TokenPrice.per_million("0.15", "0.60"), 1_000, 10)  # 150 + 6 micro-dollars
    156
    >>> token_cost(TokenPrice.per_million("0.15", "0.60"), 3, 0)  # 0.45 rounds up
    1
    """
    _check_int(input_tokens, "input_tokens", "token_cost", minimum=0)
    _check_int(output_tokens, "output_tokens", "token_cost", minimum=0)
    _check_real(scale, "scale", "token_cost")
    exact = Fraction(price.input_micro) * input_tokens + Fraction(price.output_micro) * output_tokens
    return _ceil(exact * _exact(scale))


def label_cost(price: LabelPrice, n_items: int, overlap: int = 1) -> int:
    """Cost of ``n_items`` items, each labeled by ``overlap`` annotators, in micro-dollars.

    In hourly mode this is the estimate from ``price.seconds_per_label``, rounded up.

    Raises
    ------
    ValueError
        If ``n_items`` is not an int >= 0, ``overlap`` not an int >= 1, or ``price`` is incomplete.
    """
    _check_int(n_items, "n_items", "label_cost", minimum=0)
    _check_int(overlap, "overlap", "label_cost", minimum=1)
    labels = n_items * overlap
    if _check_label_price(price, "label_cost") == "per_label":
        return price.per_label_micro * labels
    seconds = _exact(price.seconds_per_label) * labels
    return _ceil(price.hourly_wage_micro * seconds / _SECONDS_PER_HOUR)


def label_cost_from_time(price: LabelPrice, seconds: float) -> int:
    """Cost of ``seconds`` of annotator time at the hourly wage, in micro-dollars, rounded up.

    Use the summed lead time of the labels received to settle an hourly-priced batch.

    Raises
    ------
    ValueError
        If ``price`` has no hourly wage, or ``seconds`` is not a finite number >= 0.
    """
    if _check_label_price(price, "label_cost_from_time") != "hourly":
        raise ValueError(
            "label_cost_from_time needs an hourly wage; this LabelPrice is per label. "
            "Use label_cost(price, n_items, overlap) instead."
        )
    _check_real(seconds, "seconds", "label_cost_from_time")
    return _ceil(price.hourly_wage_micro * _exact(seconds) / _SECONDS_PER_HOUR)


def compute_cost(prices: DevicePrice, device_kind: str, seconds: float) -> int:
    """Cost of ``seconds`` on one device of ``device_kind``, in micro-dollars, rounded up.

    ``device_kind`` is a ``torch.device`` type; an index (``"cuda:1"``) is ignored.

    Raises
    ------
    ValueError
        If ``device_kind`` has no price, or ``seconds`` is not a finite number >= 0.
    """
    kind = device_kind.split(":", 1)[0] if isinstance(device_kind, str) else device_kind
    if kind not in prices.per_hour_micro:
        known = "{" + ", ".join(repr(k) for k in sorted(prices.per_hour_micro)) + "}"
        raise ValueError(
            f"The 'device_kind' parameter of compute_cost must be a str among {known}. Got {device_kind!r} instead."
        )
    _check_real(seconds, "seconds", "compute_cost")
    return _ceil(prices.per_hour_micro[kind] * _exact(seconds) / _SECONDS_PER_HOUR)


def flop_seconds(pricing: FlopPricing, flops: float) -> float:
    """Seconds the reference GPU takes for ``flops`` at the configured utilisation."""
    _check_real(flops, "flops", "flop_seconds")
    _check_flop_pricing(pricing, "flop_seconds")
    return float(flops) / (pricing.peak_flops * pricing.utilisation)


def flop_cost(pricing: FlopPricing, flops: float) -> int:
    """Cost of ``flops`` on the reference GPU, in micro-dollars, rounded up.

    ``seconds = flops / (peak_flops * utilisation)``; ``cost = ceil(seconds * price_per_hour / 3600)``.

    >>> flop_cost(FlopPricing(), 312e12 * 0.4 * 3600)  # one GPU-hour
    2000000
    """
    seconds = flop_seconds(pricing, flops)
    return _ceil(pricing.price_per_hour * _exact(seconds) / _SECONDS_PER_HOUR)


# --- validation and exact arithmetic ---------------------------------------------------------------


def _exact(x: float | int | Decimal) -> Fraction:
    """``x`` as an exact fraction; a float counts as its shortest repr (``0.1`` is 1/10, not its binary value)."""
    if isinstance(x, Decimal | int):
        return Fraction(x)
    return Fraction(Decimal(repr(float(x))))


def _ceil(amount: Fraction) -> int:
    return math.ceil(amount)


def _check_int(value: object, name: str, caller: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"The {name!r} parameter of {caller} must be an int >= {minimum}. Got {value!r} instead.")


def _check_real(value: object, name: str, caller: str) -> None:
    ok = isinstance(value, Real | Decimal) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ValueError(f"The {name!r} parameter of {caller} must be a finite number >= 0. Got {value!r} instead.")


def _check_label_price(price: LabelPrice, caller: str) -> str:
    """Return ``"per_label"`` or ``"hourly"``, or raise if ``price`` is neither, or both."""
    per_label = price.per_label_micro is not None
    hourly = price.hourly_wage_micro is not None or price.seconds_per_label is not None
    if per_label == hourly:
        raise ValueError(
            f"The 'price' parameter of {caller} must set either per_label_micro or hourly_wage_micro with "
            f"seconds_per_label. Got {price!r} instead. Build one with LabelPrice.per_label('0.364') or "
            "LabelPrice.hourly('15', seconds_per_label=20)."
        )
    if per_label:
        _check_int(price.per_label_micro, "per_label_micro", caller, minimum=0)
        return "per_label"
    _check_int(price.hourly_wage_micro, "hourly_wage_micro", caller, minimum=0)
    _check_real(price.seconds_per_label, "seconds_per_label", caller)
    return "hourly"


def _check_flop_pricing(pricing: FlopPricing, caller: str) -> None:
    _check_int(pricing.price_per_hour, "price_per_hour", caller, minimum=0)
    if not (isinstance(pricing.peak_flops, Real) and math.isfinite(pricing.peak_flops) and pricing.peak_flops > 0):
        raise ValueError(
            f"The 'peak_flops' parameter of {caller} must be a finite number > 0. Got {pricing.peak_flops!r} instead."
        )
    if not (isinstance(pricing.utilisation, Real) and 0 < pricing.utilisation <= 1):
        raise ValueError(
            f"The 'utilisation' parameter of {caller} must be a float in the range (0.0, 1.0]. "
            f"Got {pricing.utilisation!r} instead."
        )
