-- Failures of exports: the error queue (one row per failing subscription,
-- with its retry schedule), skipped batches, and the bounded failure history
-- (pgshadow.failure, in sql/10_catalog.sql). Batch exports and async runs
-- both record here.

CREATE TABLE pgshadow.error (
    sub_id      bigint PRIMARY KEY REFERENCES pgshadow.subscription (id) ON DELETE CASCADE,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    attempts    integer NOT NULL,
    next_retry  timestamptz NOT NULL
);

-- Skipping a batch loses changes on purpose; every skip is recorded.
CREATE TABLE pgshadow.skipped (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target        text NOT NULL,
    tbl           regclass NOT NULL,
    from_snapshot pg_snapshot NOT NULL,
    to_snapshot   pg_snapshot NOT NULL,
    keys          bigint NOT NULL,
    error         text,
    reason        text,
    skipped_by    name NOT NULL,
    skipped_at    timestamptz NOT NULL DEFAULT now()
);
-- error texts quote values: visible only with SELECT on the table concerned,
-- and not to a role whose row policies on it hide rows (it may not SELECT those)
GRANT SELECT ON pgshadow.error, pgshadow.skipped TO PUBLIC;
ALTER TABLE pgshadow.error ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.error FOR SELECT
    USING (EXISTS (SELECT FROM pgshadow.subscription s WHERE s.id = sub_id AND NOT pg_catalog.row_security_active(s.tbl)));  -- itself filtered so
ALTER TABLE pgshadow.skipped ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.skipped FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT') AND NOT pg_catalog.row_security_active(tbl));

-- Views run with their owner's rights, which pass the tables' row security:
-- each filters on the viewer's privilege itself (security_barrier keeps a
-- viewer's own functions from seeing rows before the filter).
CREATE VIEW shadow_errors WITH (security_barrier) AS
SELECT s.target, s.tbl AS "table", e.sqlstate, e.message, e.first_seen, e.last_seen, e.attempts, e.next_retry
  FROM pgshadow.error e JOIN pgshadow.subscription s ON s.id = e.sub_id
 WHERE pg_catalog.has_table_privilege(s.tbl, 'SELECT') AND NOT pg_catalog.row_security_active(s.tbl);
COMMENT ON VIEW shadow_errors IS 'pgshadow: failed exports waiting for their retry, of the tables the viewer may SELECT';
GRANT SELECT ON shadow_errors TO PUBLIC;

-- The failure history (bounded, see sql/10_catalog.sql), filtered as shadow_errors.
CREATE VIEW shadow_failures WITH (security_barrier) AS
SELECT s.target, s.tbl AS "table", f.sqlstate, f.message, f.at
  FROM pgshadow.failure f JOIN pgshadow.subscription s ON s.id = f.sub_id
 WHERE pg_catalog.has_table_privilege(s.tbl, 'SELECT') AND NOT pg_catalog.row_security_active(s.tbl);
COMMENT ON VIEW shadow_failures IS 'pgshadow: recent failures (the last 100 per subscription, 30 days), of the tables the viewer may SELECT';
GRANT SELECT ON shadow_failures TO PUBLIC;

-- Counts a failure and schedules the retry: about 1 s, 2 s, 4 s ... at most 5
-- minutes; a table that was only busy (lock_not_available: an export does not
-- wait for a table lock, _current_columns) is retried after about 1 s
-- however often it was, since nothing is wrong with it or its target.
CREATE FUNCTION pgshadow._record_failure(p_id bigint, p_sqlstate text, p_message text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    PERFORM pgshadow._check_may_export((SELECT tbl FROM pgshadow.subscription WHERE id = p_id), pgshadow._caller());
    -- Never wait for the subscription: another export holding it ships the
    -- table now and records its own outcome, and it may be waiting for a
    -- subscription this transaction holds (a cycle between two exporters).
    PERFORM FROM pgshadow.subscription WHERE id = p_id FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO pgshadow.error AS e (sub_id, sqlstate, message, first_seen, last_seen, attempts, next_retry)
    VALUES (p_id, p_sqlstate, left(p_message, 2000), v_now, v_now, 1, v_now + interval '1 second')
    ON CONFLICT (sub_id) DO UPDATE
       SET sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message, last_seen = EXCLUDED.last_seen,
           attempts = e.attempts + 1,
           -- jitter: two peers whose exports collide do not retry in lockstep
           next_retry = EXCLUDED.last_seen
                        + CASE WHEN EXCLUDED.sqlstate = '55P03' THEN interval '1 second'
                               ELSE least(interval '5 minutes', interval '1 second' * 2 ^ least(e.attempts, 20)) END
                          * (0.75 + random() / 2);
    UPDATE pgshadow.subscription SET last_error = left(p_message, 2000), last_error_at = v_now,
                                     failures = failures + 1
     WHERE id = p_id;
    -- the history (sql/10_catalog.sql), kept to its bound: this
    -- subscription's last 100, and nobody's older than 30 days
    INSERT INTO pgshadow.failure (sub_id, target, tbl, sqlstate, message, at)
    SELECT s.id, s.target, s.tbl, p_sqlstate, left(p_message, 2000), v_now
      FROM pgshadow.subscription s WHERE s.id = p_id;
    DELETE FROM pgshadow.failure
     WHERE sub_id = p_id
       AND id <= (SELECT f.id FROM pgshadow.failure f WHERE f.sub_id = p_id ORDER BY f.id DESC OFFSET 100 LIMIT 1);
    DELETE FROM pgshadow.failure WHERE at < v_now - interval '30 days';
END
$$;

-- Records a failure of a whole call (an export or shadow_run that raised and
-- rolled back, so nothing of it was kept) on the caller's subscriptions of
-- the target (NULL: every target; async_only: those shadow_run ships), never
-- on another role's: into pgshadow.error, last_error and the history. The
-- CLI and the daemon call it in a transaction of their own after such a
-- failure; shadow_export_logged does from SQL. Returns how many it recorded.
CREATE FUNCTION pgshadow.record_failure(target text, sqlstate text, message text, async_only boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id bigint;
    v_n  integer := 0;
BEGIN
    IF record_failure.sqlstate IS NULL OR record_failure.sqlstate !~ '^[0-9A-Z]{5}$' THEN
        RAISE EXCEPTION 'pgshadow: record_failure: % is not a SQLSTATE (five digits or capital letters)',
            coalesce(quote_literal(record_failure.sqlstate), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF record_failure.target IS NOT NULL
       AND NOT EXISTS (SELECT FROM pgshadow.target t WHERE t.name = record_failure.target) THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', record_failure.target USING ERRCODE = 'undefined_object';
    END IF;
    FOR v_id IN SELECT s.id FROM pgshadow.subscription s
                 WHERE (record_failure.target IS NULL OR s.target = record_failure.target)
                   AND s.mode <> 'sync' AND (s.mode = 'async' OR NOT coalesce(async_only, false))
                   AND pgshadow._may_export(pgshadow._caller(), s.tbl)
                 ORDER BY s.id LOOP
        PERFORM pgshadow._record_failure(v_id, record_failure.sqlstate,
                                         coalesce(record_failure.message, 'pgshadow: unknown failure'));
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION pgshadow.record_failure(text, text, text, boolean) IS
    'pgshadow: record a failed call (export, run) on the caller''s subscriptions of a target; returns how many';

CREATE FUNCTION pgshadow._clear_failure(p_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_may_export((SELECT tbl FROM pgshadow.subscription WHERE id = p_id), pgshadow._caller());
    DELETE FROM pgshadow.error WHERE sub_id = p_id;
END
$$;
