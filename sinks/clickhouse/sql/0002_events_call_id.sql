-- The source's id of the whole call, so that legs (transfers, ring groups, queue attempts) can be
-- consolidated into one call per manager. Empty for sources that do not give one.
ALTER TABLE {database}.events ADD COLUMN call_id String DEFAULT '' AFTER external_ref;
