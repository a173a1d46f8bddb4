"""Writing one generic CRM event (the ``crm-event-json`` format) to Kafka as a raw record.

For integrations that produce single events by hand, the demo and the benchmarks; bulk traffic
comes from ``ingest.generator``.
"""

from __future__ import annotations

import json
from datetime import datetime

from ingest.raw_producer import RawRecordOut
from salespulse.models import SourceFamily


def crm_event_record(
    record_id: str, type_: str, user_id: str, occurred_at: datetime, **fields: str
) -> RawRecordOut:
    """A raw record of one CRM event; ``fields`` are the format's optional ones (``entity``,
    ``due_at``, ``amount``...). Keyed by the CRM user, so one user's events stay in order."""
    body = {
        "id": record_id,
        "type": type_,
        "user_id": user_id,
        "occurred_at": occurred_at.isoformat(),
        **fields,
    }
    return RawRecordOut(
        SourceFamily.CRM, "crm-event-json", user_id.encode(), json.dumps(body).encode()
    )
