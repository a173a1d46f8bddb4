"""How hard the fault suite pushes: a bounded run by default (CI), a long one on request.

``SALESPULSE_FAULTS=long`` (e.g. ``SALESPULSE_FAULTS=long ./dev.sh test tests/faults``) repeats
each fault many more times and holds outages longer; every test reads its numbers from here so
that one variable switches the whole suite.
"""

from __future__ import annotations

import os

MODE = os.environ.get("SALESPULSE_FAULTS", "ci")
if MODE not in ("ci", "long"):
    raise RuntimeError(f"SALESPULSE_FAULTS must be ci or long, not {MODE!r}")
LONG = MODE == "long"


def scaled(ci: int, long: int) -> int:
    """``ci`` in the bounded run, ``long`` in the long one."""
    return long if LONG else ci
