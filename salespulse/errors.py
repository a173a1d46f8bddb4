"""The one root of every error salespulse raises on purpose, and its tree.

The command line catches ``SalespulseError`` and prints its message (``salespulse.cli``); any
other exception is a bug and prints a traceback. Each error names what went wrong in words an
operator can act on; none quotes a secret. ::

    SalespulseError
    ├── ConfigurationError      something the operator wrote: a setting, a file, a command line
    │   ├── UsageError              salespulse.cli: arguments that do not go together
    │   ├── DirectoryError          salespulse.directory: the manager directory
    │   ├── CalendarError           salespulse.calendar_file: the working calendar
    │   ├── RulesError              processors.alerting.rules: the alert rules file
    │   ├── TailerStateError        ingest.tailer_state: the tailer's position file and folder
    │   ├── CdrTableError           ingest.cdr_table_settings: the CDR table follower's settings
    │   ├── BridgeNotConfigured     salespulse.bridge_commands: a bridge started without its source
    │   ├── ReceiverNotSecured      ingest.receiver_auth: a receiver open to anyone's posts
    │   ├── ImportRefused           salespulse.history_import: files not importable as asked
    │   ├── ErasureRefused          salespulse.erase_commands: an erasure naming nobody
    │   └── StackError              salespulse.stack_packages: the local stack cannot be set up
    ├── SourceError             what a source sent or how it answered
    │   ├── RecordError             processors.parsers.base: one record, dead-lettered
    │   ├── AmiError                ingest.ami_protocol: Asterisk's manager interface
    │   │   ├── AmiAuthError, AmiProtocolError, AmiKeepaliveError
    │   ├── Bitrix24Error           ingest.bitrix24.client: the portal's REST API
    │   │   ├── Bitrix24AuthError, Bitrix24NotFound, Bitrix24Unavailable
    │   ├── WebhookRejected         ingest.bitrix24.enrich: a Bitrix24 event not ours to take
    │   ├── FormError               ingest.receiver_auth: a form body that does not parse
    │   ├── BodyTooLarge, BodyNotDecoded   ingest.receiver_body: a request body refused
    │   └── ProduceError            ingest.raw_producer: Kafka did not take what a bridge sent
    ├── StorageError            ClickHouse
    │   ├── ClickHouseError         sinks.clickhouse.client: a statement failed
    │   └── MigrationError          sinks.clickhouse.migrations: the schema history disagrees
    └── DeliveryError           telling people
        ├── AlertDeliveryError      sinks.alerts.channel: a notice a channel could not deliver
        ├── ReportError             salespulse.reports.data: a report that cannot be made
        └── ReportDeliveryError     salespulse.reports.delivery: a report that could not be sent

Nothing here imports another module of the project: every layer may import it.
"""

from __future__ import annotations


class SalespulseError(Exception):
    """An error salespulse raises on purpose, with a message for the operator."""


class ConfigurationError(SalespulseError):
    """A setting, file or command line the operator wrote is wrong."""


class SourceError(SalespulseError):
    """A source sent something unusable, or did not answer as it should."""


class StorageError(SalespulseError):
    """ClickHouse refused or failed a statement, or its schema is not what salespulse expects."""


class DeliveryError(SalespulseError):
    """An alert or a report could not be made or told to the people it was for."""
