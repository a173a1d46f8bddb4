"""The addresses of the head of sales' pages, relative to their root: one place for the pages'
own links and the alert messages' ``dashboard_url``.

An id is one path segment, percent-encoded whole (``/`` included): ids come from the directory
and the sources, and an id such as ``../metrics`` or ``a?b#c`` must still name its own page.
"""

from __future__ import annotations

from urllib.parse import quote


def manager_link(manager_id: str) -> str:
    """A manager's page."""
    return f"managers/{quote(manager_id, safe='')}"


def department_link(department_id: str) -> str:
    """A department's page."""
    return f"departments/{quote(department_id, safe='')}"
