"""Source parsers: raw record bytes to canonical ``ActivityEvent``s, one parser per format."""

from __future__ import annotations

from typing import TypedDict

from processors.parsers._common import DEFAULT_MAX_RECORD_BYTES
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser
from processors.parsers.asterisk_ami_presence import AsteriskAmiPresenceParser
from processors.parsers.asterisk_cdr_csv import AsteriskCdrCsvParser
from processors.parsers.asterisk_cdr_db import AsteriskCdrDbParser
from processors.parsers.asterisk_cel import CEL_MAX_RECORD_BYTES, AsteriskCelCallParser
from processors.parsers.base import Parser, RecordError
from processors.parsers.bitrix24_call_start import Bitrix24CallStartEventParser
from processors.parsers.bitrix24_crm_rest import Bitrix24CrmRestParser
from processors.parsers.bitrix24_openlines import Bitrix24OpenLinesParser
from processors.parsers.bitrix24_telephony import (
    Bitrix24CallEndEventParser,
    Bitrix24VoximplantStatisticParser,
)
from processors.parsers.chat_session_json import ChatSessionJsonParser
from processors.parsers.crm_event_json import CrmEventJsonParser
from processors.parsers.freeswitch_cdr_csv import FreeswitchCdrCsvParser
from processors.parsers.freeswitch_json_cdr import (
    JSON_CDR_MAX_RECORD_BYTES,
    FreeswitchJsonCdrParser,
)
from salespulse.sections import ParsingSettings

__all__ = [
    "AsteriskAmiCdrParser",
    "AsteriskAmiPresenceParser",
    "AsteriskCdrCsvParser",
    "AsteriskCdrDbParser",
    "AsteriskCelCallParser",
    "Bitrix24CallEndEventParser",
    "Bitrix24CallStartEventParser",
    "Bitrix24CrmRestParser",
    "Bitrix24OpenLinesParser",
    "Bitrix24VoximplantStatisticParser",
    "ChatSessionJsonParser",
    "CrmEventJsonParser",
    "FreeswitchCdrCsvParser",
    "FreeswitchJsonCdrParser",
    "Parser",
    "RecordError",
    "build_parsers",
]


class _PbxOptions(TypedDict):
    """What every PBX parser needs to know about the PBX."""

    timezone: str
    internal_extension_pattern: str
    max_record_bytes: int


def build_parsers(
    settings: ParsingSettings, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> dict[str, Parser]:
    """Every known parser, keyed by the format name a raw message's header carries."""
    pbx = _PbxOptions(
        timezone=settings.pbx_timezone,
        internal_extension_pattern=settings.internal_extension_pattern,
        max_record_bytes=max_record_bytes,
    )
    parsers: list[Parser] = [
        AsteriskCdrCsvParser(
            **pbx, columns=settings.asterisk_cdr_columns, encoding=settings.pbx_encoding
        ),
        AsteriskAmiCdrParser(**pbx, encoding=settings.pbx_encoding),
        AsteriskAmiPresenceParser(
            internal_extension_pattern=settings.internal_extension_pattern,
            max_record_bytes=max_record_bytes,
        ),
        # Rows arrive as UTF-8 JSON: the database client decoded them in the table's charset.
        AsteriskCdrDbParser(**pbx),
        AsteriskCelCallParser(
            timezone=settings.pbx_timezone,
            internal_extension_pattern=settings.internal_extension_pattern,
            # One record is a whole call's events, larger than most records.
            max_record_bytes=max(max_record_bytes, CEL_MAX_RECORD_BYTES),
            encoding=settings.pbx_encoding,
        ),
        FreeswitchCdrCsvParser(
            **pbx, legs=settings.freeswitch_cdr_csv_legs, encoding=settings.pbx_encoding
        ),
        FreeswitchJsonCdrParser(
            internal_extension_pattern=settings.internal_extension_pattern,
            # A full mod_json_cdr document with its call flow is larger than most records.
            max_record_bytes=max(max_record_bytes, JSON_CDR_MAX_RECORD_BYTES),
            log_b_leg=settings.freeswitch_log_b_leg,
        ),
        Bitrix24VoximplantStatisticParser(
            portal_timezone=settings.bitrix24_portal_timezone, max_record_bytes=max_record_bytes
        ),
        Bitrix24CallEndEventParser(
            portal_timezone=settings.bitrix24_portal_timezone, max_record_bytes=max_record_bytes
        ),
        Bitrix24CallStartEventParser(max_record_bytes=max_record_bytes),
        Bitrix24OpenLinesParser(max_record_bytes=max_record_bytes),
        Bitrix24CrmRestParser(
            max_record_bytes=max_record_bytes,
            office_location_keywords=settings.bitrix24_office_location_keywords,
            remote_location_keywords=settings.bitrix24_remote_location_keywords,
        ),
        ChatSessionJsonParser(max_record_bytes=max_record_bytes),
        CrmEventJsonParser(max_record_bytes=max_record_bytes),
    ]
    return {parser.format_name: parser for parser in parsers}
