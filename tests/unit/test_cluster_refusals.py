"""What does not work on a cluster yet says so, before connecting, rather than doing nothing or
failing half-way: retention would find no parts in the Distributed tables and drop nothing, and
the erasure's mutations cannot address them."""

from __future__ import annotations

import pytest

from salespulse.cli import main


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["retention", "apply"], "retention does not drop partitions on a cluster yet"),
        (["erase", "--manager", "ivanov", "--dry-run"], "erasure does not run on a cluster yet"),
    ],
)
def test_refused_on_a_cluster_before_connecting(
    argv: list[str], what: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__CLUSTER", "salespulse")
    # Nothing listens here: a connection attempt would fail differently.
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PORT", "1")
    assert main(argv) == 2
    assert what in capsys.readouterr().err
