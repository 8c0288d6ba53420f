-- pgshadow catalog: which tables are tracked, which targets exist and what is
-- shipped where. No credentials are ever stored here: a target names a foreign
-- server, and the user mapping of the exporting role holds the password.

CREATE TABLE pgshadow.tracked (
    tbl         regclass PRIMARY KEY,          -- regclass so pg_dump/restore re-resolves the name
    shadow      name NOT NULL UNIQUE,          -- table in schema pgshadow holding the changed keys
    key_cols    name[] NOT NULL,               -- primary key columns, in key order
    key_types   text[] NOT NULL,               -- their types as format_type() prints them (qualified)
    -- capture: the table's own trigger function, pgshadow.<shadow>_fn() (sql/30_capture.sql)
    notify      boolean NOT NULL DEFAULT false, -- an async subscription waits: capture sends NOTIFY pgshadow
    versions    name,                          -- multi-master: table of the last version (time, node) of each key
    gen         smallint NOT NULL DEFAULT 0,   -- the shadow partition writers append to (0 or 1)
    tracked_at  timestamptz NOT NULL DEFAULT now(),
    tracked_by  name NOT NULL
);

CREATE TABLE pgshadow.target (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,48}$'),
    server      name,                          -- postgres_fdw foreign server; NULL = a file target (pgshadow export/import)
    owner       name NOT NULL,                 -- role that created it
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- the node the server reaches, learned over a connection to it (a mesh
    -- peer's apply finds its pending changes for an origin by this, never by
    -- the target's name): its pgshadow.node id and node name; peer_at is when
    -- it was last learned (NULL: never; then a NULL peer_id means the target
    -- runs no pgshadow)
    peer_id     uuid,
    peer_node   text,
    peer_at     timestamptz,
    -- every subscription of the target ships at one source snapshot in one
    -- remote transaction (shadow_alter_target), so the target only ever
    -- shows states the source had (foreign keys between its tables hold)
    consistent  boolean NOT NULL DEFAULT false
);

-- This database as a node of a mesh: an id generated at install, so two
-- databases with the same name (on two servers) differ. Not dumped with the
-- data: a database restored from a dump is a new node, and so is one that
-- finds itself moved into another transaction-id history (a copy: see
-- pgshadow._check_history, which renews the id).
CREATE TABLE pgshadow.node (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),  -- exactly one row
    id   uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid()
);
INSERT INTO pgshadow.node DEFAULT VALUES;

CREATE TABLE pgshadow.subscription (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target       text NOT NULL REFERENCES pgshadow.target (name) ON UPDATE CASCADE,
    tbl          regclass NOT NULL REFERENCES pgshadow.tracked (tbl) ON DELETE CASCADE,
    dest_schema  name NOT NULL,
    dest_table   name NOT NULL,
    columns      name[] NOT NULL,              -- shipped columns, primary key included
    row_filter   text,                         -- canonical boolean expression over the source row (pgshadow._filter)
    mode         text NOT NULL DEFAULT 'batch' CHECK (mode IN ('batch', 'async', 'sync')),
    on_conflict  text NOT NULL DEFAULT 'source_wins'
                 CHECK (on_conflict IN ('source_wins', 'target_wins', 'latest', 'error')),
    -- the watermark: every transaction visible in this snapshot has been shipped
    snapshot     pg_snapshot NOT NULL,
    needs_copy   boolean NOT NULL DEFAULT false, -- a full copy must precede the next batch
    batch_no     bigint NOT NULL DEFAULT 0,    -- batches shipped so far (file mode numbers its files with it)
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL,
    last_export  timestamptz,
    last_error   text,
    last_error_at timestamptz,
    keys_shipped bigint NOT NULL DEFAULT 0,
    failures     bigint NOT NULL DEFAULT 0,    -- failures ever recorded (pgshadow._record_failure): a counter for monitoring
    -- the last time a purge stopped keeping this subscription's backlog
    -- (pgshadow.max_backlog_age), and why; needs_copy was set then
    backlog_dropped_at     timestamptz,
    backlog_dropped_reason text,
    -- subscribed without a column list: ships the table's columns as they are
    -- at each export (columns then holds those shipped last)
    all_columns  boolean NOT NULL DEFAULT false,
    UNIQUE (target, tbl)
);
CREATE INDEX ON pgshadow.subscription (tbl);

-- Roles a table's owner lets export its subscriptions without owning the
-- table (shadow_grant_export): a scheduler that must not be able to drop it.
CREATE TABLE pgshadow.export_grant (
    tbl         regclass NOT NULL REFERENCES pgshadow.tracked (tbl) ON DELETE CASCADE,
    grantee     regrole NOT NULL,              -- regrole so pg_dump/restore re-resolves the name; forgotten when the role is dropped
    granted_by  name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, grantee)
);

-- All writes go through pgshadow's functions. Tables and targets hold names
-- only; anyone may read them. A subscription's row filter and last error can
-- quote row data, so a role sees a subscription only if it may SELECT the
-- table it ships (the functions that run with the caller's rights read it
-- so too; the SECURITY DEFINER helpers, as the catalog's owner, see all).
GRANT SELECT ON pgshadow.tracked, pgshadow.target, pgshadow.subscription, pgshadow.node TO PUBLIC;
ALTER TABLE pgshadow.subscription ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.subscription FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT'));
GRANT SELECT ON pgshadow.export_grant TO PUBLIC;
ALTER TABLE pgshadow.export_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.export_grant FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT'));

-- Failure history: every recorded failure (pgshadow._record_failure) appends
-- a row, so an incident outlives the success that clears pgshadow.error and
-- last_error. Bounded, so a target down for weeks with a daemon retrying
-- cannot grow it: the last 100 failures of a subscription (enough to see
-- the course of an incident; its start stays in pgshadow.error.first_seen)
-- and nothing older than 30 days (an incident is reviewed within a month).
CREATE TABLE pgshadow.failure (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sub_id      bigint NOT NULL REFERENCES pgshadow.subscription (id) ON DELETE CASCADE,
    target      text NOT NULL,
    tbl         regclass NOT NULL,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX ON pgshadow.failure (sub_id, id);
CREATE INDEX ON pgshadow.failure (at);
-- error texts quote values: as pgshadow.error, visible only with SELECT on
-- the table and not to a role whose row policies on it hide rows
GRANT SELECT ON pgshadow.failure TO PUBLIC;
ALTER TABLE pgshadow.failure ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.failure FOR SELECT
    USING (EXISTS (SELECT FROM pgshadow.subscription s WHERE s.id = sub_id AND NOT pg_catalog.row_security_active(s.tbl)));  -- itself filtered so

-- The catalog tables pg_dump dumps with their rows, which it otherwise leaves
-- out for an extension's own tables: every one but pgshadow.node (a restored
-- database is a new node, see above) and the unlogged pgshadow.sync_open
-- (the state of running transactions). A restored database keeps what is
-- tracked, its targets, subscriptions and watermarks, and the stamp of the
-- xid history they were taken in (pgshadow.history, which the install leaves
-- empty, so a restore elsewhere is detected). Only under CREATE or ALTER
-- EXTENSION: installed by plain SQL (migrations), these are ordinary tables,
-- which pg_dump dumps anyway. Called last (sql/89_finish.sql), when every
-- table exists; upgrades call it again after adding one.
CREATE FUNCTION pgshadow._dump_catalog() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pgshadow') THEN
        RETURN;
    END IF;
    FOREACH v IN ARRAY ARRAY['pgshadow.tracked', 'pgshadow.target', 'pgshadow.subscription',
                             'pgshadow.subscription_id_seq', 'pgshadow.failure', 'pgshadow.failure_id_seq',
                             'pgshadow.export_grant', 'pgshadow.history', 'pgshadow.conflict',
                             'pgshadow.conflict_id_seq', 'pgshadow.error', 'pgshadow.skipped',
                             'pgshadow.skipped_id_seq'] LOOP
        PERFORM pg_extension_config_dump(v::regclass, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION pgshadow._dump_catalog() FROM PUBLIC;
