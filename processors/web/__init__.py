"""The head of sales' pages served by the worker: today against baseline and norm, live alerts.

``add_web_pages`` registers them on the faust app; ``TodaySource`` is the cached reading they
share. See docs/web.md.
"""

from processors.web.routes import REFRESH_SECONDS, add_web_pages
from processors.web.source import TodaySource

__all__ = ["REFRESH_SECONDS", "TodaySource", "add_web_pages"]
