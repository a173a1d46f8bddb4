-- Cluster variant of 0003_calls_view.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- One call per manager involved, consolidated from the legs that share the source's call id
-- (Asterisk linkedid, FreeSWITCH call uuid, Bitrix24 CALL_ID). A leg without a call id is a call
-- on its own. The view exposes facts, not policy: rung_members (how many managers' phones the
-- call reached) and call_answered (whether anyone answered) let each query decide whether the
-- unanswered leg of a ring-group member counts as that member's missed call.
-- Inner aliases differ from column names on purpose: old servers resolve an alias equal to a
-- column name inside its own aggregate as a nested aggregate.
CREATE VIEW IF NOT EXISTS {database}.calls ON CLUSTER {cluster} AS
SELECT
    call_key,
    manager_id,
    first_department AS department_id,
    first_local_date AS local_date,
    first_at AS occurred_at,
    first_direction AS direction,
    any_answered AS answered,
    total_talk AS talk_seconds,
    total_duration AS duration_seconds,
    legs,
    rung_members,
    call_answered
FROM
(
    SELECT
        if(call_id = '', event_id, call_id) AS call_key,
        manager_id,
        any(department_id) AS first_department,
        min(local_date) AS first_local_date,
        min(occurred_at) AS first_at,
        argMin(direction, occurred_at) AS first_direction,
        max(answered) AS any_answered,
        sum(talk_seconds) AS total_talk,
        sum(duration_seconds) AS total_duration,
        count() AS legs
    FROM {database}.events FINAL
    WHERE kind = 'call'
    GROUP BY call_key, manager_id
) AS per_manager
ANY LEFT JOIN
(
    SELECT
        if(call_id = '', event_id, call_id) AS call_key,
        uniqExactIf(manager_id, manager_id != '') AS rung_members,
        max(answered) AS call_answered
    FROM {database}.events FINAL
    WHERE kind = 'call'
    GROUP BY call_key
) AS per_call USING call_key;
