"""One evaluation tick, as the worker runs it: every rule judged at an instant, the engine's
notices out.

Shared by the worker's evaluator (``processors.alerting.service``), which reads the situation
from ClickHouse, and by anything that replays alerting on a controlled clock with hand-made
situations (the unit-test world, benchmarks/alert_quality.py), so that both run the very same
sequence.
"""

from __future__ import annotations

from processors.alerting.conditions import Situation, gone_reason, judge
from processors.alerting.engine import AlertEngine
from processors.alerting.model import Notice


def evaluate(engine: AlertEngine, situation: Situation) -> list[Notice]:
    """Judge ``situation`` and step ``engine`` to ``situation.now``. The situation's quiet
    book, if any, learns first which keys fire or wait for their hold: those are judged anew."""
    quiet = situation.quiet
    if quiet is not None:
        quiet.firing = frozenset(alert.key for alert in engine.firing())
        quiet.pending = engine.pending()
    return engine.step(situation.now, judge(situation), situation.rules, gone_reason)
