"""Activity reports per manager and department for a day, an ISO week or a month.

Read from the dashboard rollups (``activity_daily``, ``payments_daily``), rendered as a
self-contained HTML page or a CSV file, on demand (``salespulse report``) or on a schedule
(``salespulse report schedule``) delivered by e-mail and into a folder. See docs/reports.md.
"""
