"""One evaluation tick, as the worker runs it: every rule judged at an instant, the engine's
notices out.

Shared by the worker's evaluator (``processors.alert_service``), which reads the situation
from ClickHouse, and by anything that replays alerting on a controlled clock with hand-made
situations (the unit-test world, benchmarks/alert_quality.py), so that both run the very same
sequence.
"""

from __future__ import annotations

from processors.alerting.conditions import gone_reason, judge, with_onsets
from processors.alerting.engine import AlertEngine
from processors.alerting.situation import Situation
from salespulse.alert_model import Notice


def evaluate(engine: AlertEngine, situation: Situation, *, resumed: bool = False) -> list[Notice]:
    """Judge ``situation`` and step ``engine`` to ``situation.now``. The situation's quiet
    book, if any, learns first which keys fire or wait for their hold: those are judged anew.

    ``resumed``: the first evaluation of an engine restored from the history (a new leader, a
    restart): breaches the engine does not know yet are dated back to their onsets, so that a
    hold that was running goes on from its start (``with_onsets``)."""
    firing = frozenset(alert.key for alert in engine.firing())
    pending = engine.pending()
    if situation.quiet is not None:
        situation.quiet.firing = firing
        situation.quiet.pending = pending
    verdicts = judge(situation)
    if resumed:
        verdicts = with_onsets(situation, verdicts, {*firing, *pending})
    return engine.step(situation.now, verdicts, situation.rules, gone_reason)
