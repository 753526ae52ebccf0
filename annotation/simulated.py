"""Simulated annotators: the gold label plus noise, skips and latency.

Every answer is a pure function of ``(seed, external_id, annotator_index)``: each call builds its own
numpy ``Generator`` from a hash of those three, so answers never depend on the order of calls. A run
that is killed and resumed therefore gets exactly the answers it would have got without the crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np

from annotation.exceptions import InvalidParameterError

__all__ = ["SimulatedAnnotators"]


class SimulatedAnnotators:
    """A crowd of simulated people who answer with the gold label, except when they do not.

    For each (item, annotator), with probability ``skip_rate`` the annotator skips; otherwise, with
    probability ``error_rate`` they answer a wrong label drawn uniformly from the other classes;
    otherwise they answer the gold label. Each answer takes a time drawn uniformly from ``latency_s``.

    Parameters
    ----------
    n_annotators : int, default=3
        How many distinct annotators there are (named ``sim-0`` ... ``sim-{n-1}``).
    error_rate : float, default=0.1
        Probability, in [0.0, 1.0), that a non-skipped answer is wrong.
    skip_rate : float, default=0.05
        Probability, in [0.0, 1.0), that the annotator skips the item.
    latency_s : tuple of (float, float), default=(30.0, 120.0)
        Lower and upper bound, in seconds, of the uniform time one answer takes.
    seed : int, default=0
        Seed of every answer; the same seed gives the same answers.

    Examples
    --------
    >>> crowd = SimulatedAnnotators(error_rate=0.0, skip_rate=0.0)
    >>> crowd.answer("run1-ab12", "YES", ("NO", "YES"), 0)[0]
    'YES'
    """

    def __init__(
        self,
        *,
        n_annotators: int = 3,
        error_rate: float = 0.1,
        skip_rate: float = 0.05,
        latency_s: tuple[float, float] = (30.0, 120.0),
        seed: int = 0,
    ) -> None:
        self.n_annotators = n_annotators
        self.error_rate = error_rate
        self.skip_rate = skip_rate
        self.latency_s = latency_s
        self.seed = seed
        self._validate_params()

    def _validate_params(self) -> None:
        name = type(self).__name__

        def fail(param: str, allowed: str) -> None:
            raise InvalidParameterError(
                f"The '{param}' parameter of {name} must be {allowed}. Got {getattr(self, param)!r} instead."
            )

        if not isinstance(self.n_annotators, Integral) or isinstance(self.n_annotators, bool) or self.n_annotators < 1:
            fail("n_annotators", "an int in the range [1, inf)")
        for param in ("error_rate", "skip_rate"):
            value = getattr(self, param)
            if not isinstance(value, Real) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                fail(param, "a float in the range [0.0, 1.0)")
        lat = self.latency_s
        if (
            not isinstance(lat, Sequence)
            or len(lat) != 2
            or not all(isinstance(x, Real) and not isinstance(x, bool) for x in lat)
            or not 0.0 <= lat[0] <= lat[1]
        ):
            fail("latency_s", "a pair (low, high) of seconds with 0 <= low <= high")
        if not isinstance(self.seed, Integral) or isinstance(self.seed, bool) or self.seed < 0:
            fail("seed", "an int in the range [0, inf)")

    def __repr__(self) -> str:
        return (
            f"SimulatedAnnotators(n_annotators={self.n_annotators}, error_rate={self.error_rate}, "
            f"skip_rate={self.skip_rate}, latency_s={tuple(self.latency_s)}, seed={self.seed})"
        )

    @property
    def names(self) -> list[str]:
        """Annotator names, ``sim-0`` to ``sim-{n_annotators - 1}``, in annotator-index order."""
        return [self.name(i) for i in range(self.n_annotators)]

    @staticmethod
    def name(annotator_index: int) -> str:
        """The name of annotator ``annotator_index``, as connectors report it."""
        return f"sim-{annotator_index}"

    def _rng(self, external_id: str, annotator_index: int) -> np.random.Generator:
        digest = hashlib.sha256(external_id.encode("utf-8")).digest()
        key = [int(self.seed), int(annotator_index), int.from_bytes(digest[:8], "little"),
               int.from_bytes(digest[8:16], "little")]
        return np.random.default_rng(np.random.SeedSequence(key))

    def answer(
        self, external_id: str, gold_label: str, labels: Sequence[str], annotator_index: int
    ) -> tuple[str | None, float]:
        """One annotator's answer to one item.

        Parameters
        ----------
        external_id : str
            The item's stable id; together with the seed and the annotator it fixes the answer.
        gold_label : str
            The true label, one of ``labels``.
        labels : sequence of str
            The task's label set.
        annotator_index : int
            Which annotator answers, in ``[0, n_annotators)``.

        Returns
        -------
        label : str or None
            The label given, or None when the annotator skipped.
        lead_time_s : float
            Seconds the annotator spent on the item (also spent on skips).

        Raises
        ------
        ValueError
            If ``gold_label`` is not in ``labels`` or ``annotator_index`` is out of range.
        """
        labels = tuple(labels)
        if gold_label not in labels:
            raise ValueError(f"Gold label {gold_label!r} of item {external_id!r} is not among the labels {labels}.")
        if not 0 <= annotator_index < self.n_annotators:
            raise ValueError(
                f"Annotator index {annotator_index} is out of range: there are {self.n_annotators} annotators."
            )
        rng = self._rng(external_id, annotator_index)
        # Always draw the same four numbers in the same order, whatever the outcome.
        u_skip, u_error, u_pick, u_time = rng.random(4)
        low, high = self.latency_s
        lead_time_s = float(low + (high - low) * u_time)
        if u_skip < self.skip_rate:
            return None, lead_time_s
        others = [label for label in labels if label != gold_label]
        if others and u_error < self.error_rate:
            return others[min(int(u_pick * len(others)), len(others) - 1)], lead_time_s
        return gold_label, lead_time_s
