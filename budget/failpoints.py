"""Named crash points, so tests can SIGKILL a run at an exact kind of step and resume it.

After the failpoints of etcd and FoundationDB: the loop calls :func:`reach` at each place where a
crash matters (a grant, a proposal, an approval, a push, a pull, a settlement, a metered compute
step, the end of a round). Nothing happens unless the environment asks for it:

``AOD_KILL_AT="push:2:1"``
    SIGKILL this process the 1st time it reaches ``push`` in round 2 (``push:*:3``: the 3rd time
    it reaches ``push`` anywhere; ``compute:2.teacher:40``: the 40th metered step of round 2's
    teacher). The kill is real: no ``finally``, no flush, no atexit.
``AOD_FAILPOINT_LOG=path``
    Append one line ``name where`` per point reached, so a harness can learn the sequence of an
    uninterrupted run and choose where to kill.

Counts are per process: a resumed process counts from one again. A point's ``where`` is its round,
and for compute points its round and step, so counts mean the same in a process that skips steps
an earlier process finished.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["POINTS", "reach"]

#: every point the loop reaches, in the order a round meets them
POINTS = ("grant", "round-start", "propose", "approve", "push", "pull", "settle", "compute", "compute-done",
          "round-end")

_seen: Counter[tuple[str, str]] = Counter()


def _target() -> tuple[str, str, int] | None:
    spec = os.environ.get("AOD_KILL_AT", "")
    if not spec:
        return None
    name, rnd, nth = spec.split(":")
    if name not in POINTS:
        raise ValueError(f"AOD_KILL_AT names an unknown point {name!r}; use one of {list(POINTS)}.")
    return name, rnd, int(nth)


def reach(name: str, where: int | str | None = None) -> None:
    """Mark that the run reached point ``name`` (in round or step ``where``); die here if the environment says so.

    The environment is read at each call (two dictionary lookups when unset), so a process forked
    from one that imported this module still obeys its own settings.
    """
    log, target = os.environ.get("AOD_FAILPOINT_LOG"), _target()
    if target is None and not log:
        return
    rnd = "*" if where is None else str(where)
    if log:
        with open(log, "a") as f:
            f.write(f"{name} {rnd}\n")
    if target is None or target[0] != name or target[1] not in {"*", rnd}:
        return
    key = (name, target[1])
    _seen[key] += 1
    if _seen[key] == target[2]:
        os.kill(os.getpid(), signal.SIGKILL)
