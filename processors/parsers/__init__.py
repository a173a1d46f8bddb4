"""Source parsers: raw record bytes to canonical ``ActivityEvent``s, one parser per format."""

from __future__ import annotations

from processors.parsers._common import DEFAULT_MAX_RECORD_BYTES
from processors.parsers.asterisk_cdr_csv import AsteriskCdrCsvParser
from processors.parsers.base import Parser, RecordError
from processors.parsers.chat_session_json import ChatSessionJsonParser
from processors.parsers.crm_event_json import CrmEventJsonParser
from salespulse.settings import ParsingSettings

__all__ = [
    "AsteriskCdrCsvParser",
    "ChatSessionJsonParser",
    "CrmEventJsonParser",
    "Parser",
    "RecordError",
    "build_parsers",
]


def build_parsers(
    settings: ParsingSettings, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> dict[str, Parser]:
    """Every known parser, keyed by the format name a raw message's header carries."""
    parsers: list[Parser] = [
        AsteriskCdrCsvParser(
            timezone=settings.pbx_timezone,
            internal_extension_pattern=settings.internal_extension_pattern,
            max_record_bytes=max_record_bytes,
        ),
        ChatSessionJsonParser(max_record_bytes=max_record_bytes),
        CrmEventJsonParser(max_record_bytes=max_record_bytes),
    ]
    return {parser.format_name: parser for parser in parsers}
