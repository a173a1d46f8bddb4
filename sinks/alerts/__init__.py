"""Alert delivery: the notices the engine produces, to a Kafka topic, Alertmanager and a webhook.

The service records each notice in ClickHouse (``sinks.clickhouse.alert_history``) and then
hands it to an ``AlertDispatcher``, which delivers it to every channel in the background. See
docs/alert-delivery.md.
"""

from sinks.alerts.alertmanager import AlertmanagerChannel
from sinks.alerts.channel import AlertDeliveryError, Channel, Resumable
from sinks.alerts.dispatch import AlertDispatcher, RetryPolicy
from sinks.alerts.kafka_topic import KafkaTopicChannel
from sinks.alerts.payload import SCHEMA, encode_payload, notice_payload
from sinks.alerts.webhook import WebhookChannel, sign, verify_signature

__all__ = [
    "SCHEMA",
    "AlertDeliveryError",
    "AlertDispatcher",
    "AlertmanagerChannel",
    "Channel",
    "KafkaTopicChannel",
    "Resumable",
    "RetryPolicy",
    "WebhookChannel",
    "encode_payload",
    "notice_payload",
    "sign",
    "verify_signature",
]
