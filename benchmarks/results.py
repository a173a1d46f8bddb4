"""docs/benchmarks.md: each benchmark owns one section and replaces it with its latest run."""

from __future__ import annotations

from salespulse.settings import REPO_ROOT

RESULTS = REPO_ROOT / "docs" / "benchmarks.md"


def write_section(heading: str, body: str) -> None:
    """Replace the section that starts with ``heading`` (a ``## `` line), or append it."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    section = f"{heading}\n\n{body.strip()}\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        after = rest.split("\n## ", 1)
        text = before + section + ("\n## " + after[1] if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
