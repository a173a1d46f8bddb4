"""The Bitrix24 bridge: outgoing CRM events enriched over REST into raw Kafka records.

``client`` talks to the portal's REST API within its limits, ``enrich`` turns an id-only event
into the record the portal returns for it, and ``settings`` configures both. The package itself
imports nothing, so the main settings can include ``Bitrix24Settings`` without a cycle.
"""
