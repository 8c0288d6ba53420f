-- What tracking a table means for it: its key, its columns, and track_plan,
-- the one statement list shadow_track runs and `pgshadow gen` prints.
-- Length: track_plan is one list of steps (its comment says why).

-- The primary key columns of p_tbl in key order, with their exact types and
-- collations (as format_type prints them); NULLs when it has none. The
-- catalog keeps what tracking found, capture and exports rely on it.
CREATE FUNCTION pgshadow._key(p_tbl regclass, OUT cols name[], OUT types text[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(a.attname ORDER BY k.ord),
           array_agg(format_type(a.atttypid, a.atttypmod)
                     || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                             THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END
                     ORDER BY k.ord)
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      JOIN pg_type t ON t.oid = a.atttypid
     WHERE i.indrelid = p_tbl AND i.indisprimary
$$;

-- Shipped columns of a table: the requested ones (validated) or all ordinary
-- ones; generated columns are computed by the target itself, never shipped.
CREATE FUNCTION pgshadow._columns(p_tbl regclass, p_columns text[], p_keys name[]) RETURNS name[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_all  name[];
    v_bad  text;
BEGIN
    SELECT array_agg(attname ORDER BY attnum) INTO v_all
      FROM pg_attribute
     WHERE attrelid = p_tbl AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
    IF p_columns IS NULL THEN
        RETURN v_all;
    END IF;
    SELECT string_agg(c, ', ') INTO v_bad FROM unnest(p_columns) c WHERE c::name <> ALL (v_all);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: table % has no shippable column(s) %', p_tbl, v_bad
            USING ERRCODE = 'undefined_column',
                  HINT = 'Columns must exist and not be generated.';
    END IF;
    SELECT string_agg(k, ', ') INTO v_bad FROM unnest(p_keys) k WHERE k <> ALL (p_columns::name[]);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: the columns shipped from % must include its primary key (missing: %)', p_tbl, v_bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT c) FROM unnest(p_columns) c) <> cardinality(p_columns) THEN
        RAISE EXCEPTION 'pgshadow: column list for % names a column twice', p_tbl
            USING ERRCODE = 'duplicate_column';
    END IF;
    -- keep the table's column order: the target maps by name anyway
    RETURN ARRAY(SELECT a FROM unnest(v_all) a WHERE a = ANY (p_columns::name[]));
END
$$;

-- The table inheritance links (INHERITS, not partitions) with p_tbl on
-- either side. Neither side may be tracked: a child's rows written through
-- its parent fire the parent's statement triggers but not its key trigger,
-- writes to the child fire none of the parent's, and writes through a
-- parent fire none of a tracked child's statement triggers.
CREATE FUNCTION pgshadow._inheritance(p_tbl regclass, OUT parent regclass, OUT child regclass)
RETURNS SETOF record
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.inhparent::regclass, i.inhrelid::regclass
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid AND NOT c.relispartition
     WHERE p_tbl IN (i.inhparent, i.inhrelid)
$$;

-- The capture triggers p_rel needs, as the statements that drop an outdated
-- one (of an earlier version or shape) and create a missing one. p_rel is a
-- tracked table, or with p_partitioned a member of a tracked partitioned
-- table's tree: statement triggers fire only on the table a statement names,
-- so every member gets its own; the row-level key trigger is put on the root
-- only, and PostgreSQL clones it to every partition, present and future.
-- Partitioned members get OLD TABLE on UPDATE (rows moved between
-- partitions, see pgshadow._capture_fn), and TRUNCATE is captured BEFORE:
-- a truncated leaf records its keys while it still has them.
CREATE FUNCTION pgshadow._trigger_plan(p_rel regclass, p_fn text, p_cols name[], p_partitioned boolean) RETURNS SETOF text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v      record;
    v_kind "char" := (SELECT c.relkind FROM pg_class c WHERE c.oid = p_rel);
    v_root boolean := NOT p_partitioned OR pg_partition_root(p_rel) = p_rel;
BEGIN
    FOR v IN
        SELECT * FROM (VALUES
            ('pgshadow_capture_key', 'AFTER', 'UPDATE', '', ''),
            ('pgshadow_capture_ins', 'AFTER', 'INSERT',   ' REFERENCING NEW TABLE AS pgshadow_new', ''),
            -- new keys only: no OLD TABLE, whose tuplestore every UPDATE would
            -- fill, but where rows can move between partitions
            ('pgshadow_capture_upd', 'AFTER', 'UPDATE',
             ' REFERENCING NEW TABLE AS pgshadow_new' || CASE WHEN v_kind = 'p' THEN ' OLD TABLE AS pgshadow_old' ELSE '' END,
             CASE WHEN v_kind = 'p' THEN 'moves' ELSE '' END),
            ('pgshadow_capture_del', 'AFTER', 'DELETE',   ' REFERENCING OLD TABLE AS pgshadow_old', ''),
            ('pgshadow_capture_trunc', CASE WHEN p_partitioned THEN 'BEFORE' ELSE 'AFTER' END, 'TRUNCATE', '', ''))
            AS t(name, timing, event, referencing, arg)
         WHERE t.name <> 'pgshadow_capture_key' OR v_root
    LOOP
        -- a trigger of an earlier version (the generic pgshadow.capture(), the
        -- statement-level key trigger, OLD TABLE on UPDATE) is replaced in the
        -- same transaction, so no write goes uncaptured
        CONTINUE WHEN EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = p_rel AND g.tgname = v.name
                                                     AND g.tgfoid = to_regproc(p_fn)
                                                     AND (v.name <> 'pgshadow_capture_key' OR g.tgtype & 1 = 1)
                                                     AND (g.tgtype & 2 = 2) = (v.timing = 'BEFORE')
                                                     AND (g.tgoldtable IS NOT NULL) = (v.referencing LIKE '%OLD TABLE%')
                                                     AND g.tgnargs = CASE WHEN v.arg = '' THEN 0 ELSE 1 END);
        IF EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = p_rel AND g.tgname = v.name) THEN
            RETURN NEXT format('DROP TRIGGER %I ON %s', v.name, p_rel);
        END IF;
        IF v.name = 'pgshadow_capture_key' THEN
            -- fires only for rows whose key changed, however (SET list, BEFORE
            -- trigger, ON CONFLICT DO UPDATE); keys are NOT NULL: plain
            -- equality, resolved in pg_catalog
            RETURN NEXT format('CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (NOT (%s)) EXECUTE FUNCTION %s()',
                               v.name, p_rel,
                               (SELECT string_agg(format('OLD.%1$I OPERATOR(pg_catalog.=) NEW.%1$I', c), ' AND ') FROM unnest(p_cols) c),
                               p_fn);
        ELSE
            RETURN NEXT format('CREATE TRIGGER %I %s %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                               v.name, v.timing, v.event, p_rel, v.referencing, p_fn,
                               CASE WHEN v.arg <> '' THEN quote_literal(v.arg) ELSE '' END);
        END IF;
    END LOOP;
END
$$;

-- Everything tracking p_tbl executes, in order (leaving out what exists
-- already), after checking that it can be tracked: kind 'shadow' steps run with pgshadow's rights (_make_shadow),
-- kind 'trigger' steps with the table owner's (_track). `pgshadow gen` prints
-- the same steps for review, so what is reviewed is what runs.
-- Length: every step tracking runs, in one list, which is the point: the
-- plan and the execution come from this one source. Each step is short.
CREATE FUNCTION pgshadow.track_plan(p_tbl regclass) RETURNS TABLE (step integer, kind text, sql text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_rel       record;
    v_cols      name[];
    v_types     text[];
    v_shadow    text;      -- text, not name: a name would silently truncate to 63 bytes
    v_list      text;
    v_old       pgshadow.tracked%ROWTYPE;
    v_other     regclass;
    v_known     boolean;
    v_fn        text;
    v_def       text;
    v_proc      record;
    v_part      boolean;
    v_member    regclass;
    v_inherits  text := (SELECT format('%s inherits from %s', i.child, i.parent) FROM pgshadow._inheritance(p_tbl) i LIMIT 1);
BEGIN
    SELECT c.relname, n.nspname, c.relkind, c.relpersistence, c.relispartition,
           c.relowner::regrole::name AS owner
      INTO v_rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: table with oid % does not exist', p_tbl::oid USING ERRCODE = 'undefined_table';
    ELSIF v_rel.relispartition THEN
        -- rows written through its parent would fire the parent's statement
        -- triggers, not its own
        RAISE EXCEPTION 'pgshadow: cannot track %: it is a partition of %', p_tbl, pg_partition_root(p_tbl)
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('Track the partitioned table %s: that captures the writes to every partition.', pg_partition_root(p_tbl));
    ELSIF v_inherits IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: it takes part in table inheritance (%)', p_tbl, v_inherits
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Writes to a child, or through a parent, would not all be captured; use declarative partitioning, and track the partitioned table.';
    ELSIF v_rel.relkind = 'p' AND NOT EXISTS (SELECT FROM pg_event_trigger e
                                               WHERE e.evtname IN ('pgshadow_partition_watch', 'pgshadow_drop_watch')
                                                 AND e.evtenabled <> 'D' HAVING count(*) = 2) THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: partitioned tables need pgshadow''s event triggers pgshadow_partition_watch and pgshadow_drop_watch, which are missing or disabled', p_tbl
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'They capture partitions created, attached, detached or dropped later, and are installed only when a superuser installs pgshadow.';
    ELSIF v_rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: not an ordinary table', p_tbl
            USING ERRCODE = 'wrong_object_type';
    ELSIF v_rel.relpersistence = 't' THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: temporary tables are private to one session', p_tbl
            USING ERRCODE = 'wrong_object_type';
    ELSIF v_rel.relpersistence = 'u' THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: unlogged tables lose their rows in a crash, so their changes cannot be shipped reliably', p_tbl
            USING ERRCODE = 'wrong_object_type';
    END IF;

    v_part := v_rel.relkind = 'p';
    SELECT k.cols, k.types INTO v_cols, v_types FROM pgshadow._key(p_tbl) k;
    IF v_cols IS NULL THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: it has no primary key', p_tbl
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Changes are shipped by key; add a PRIMARY KEY to the table.';
    END IF;
    IF v_cols && ARRAY['shadow_op', 'shadow_xid', 'shadow_at', 'shadow_gen']::name[] THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: primary key column names shadow_op, shadow_xid, shadow_at and shadow_gen are reserved', p_tbl
            USING ERRCODE = 'invalid_table_definition';
    END IF;

    v_shadow := v_rel.nspname || '__' || v_rel.relname;
    -- the capture function's body is dollar-quoted with this tag and holds
    -- these names (see pgshadow._capture_fn)
    IF strpos(v_shadow, '$pgshadow$') > 0 OR EXISTS (SELECT FROM unnest(v_cols) c WHERE strpos(c, '$pgshadow$') > 0) THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: its schema, name or primary key column names contain "$pgshadow$"', p_tbl
            USING ERRCODE = 'invalid_name',
                  HINT = 'Rename the table, its schema or the key column.';
    END IF;
    SELECT * INTO v_old FROM pgshadow.tracked WHERE tbl = p_tbl;
    v_known := FOUND;
    IF v_known THEN
        IF v_old.key_cols IS DISTINCT FROM v_cols OR v_old.key_types IS DISTINCT FROM v_types THEN
            RAISE EXCEPTION 'pgshadow: the primary key of % changed since it was tracked (was %, now %)',
                p_tbl, v_old.key_cols, v_cols
                USING HINT = 'Ship pending changes, then shadow_untrack() and shadow_track() it again.';
        END IF;
        -- a renamed table keeps its shadow table (and the keys pending in it)
        v_shadow := v_old.shadow;
    END IF;
    -- 63 bytes is PostgreSQL's limit; the two partitions add "_g0"/"_g1"
    IF octet_length(v_shadow) > 60 THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: its shadow table name "%" is % bytes, over the 60-byte limit (63 less the partition suffix)',
            p_tbl, v_shadow, octet_length(v_shadow)
            USING ERRCODE = 'name_too_long',
                  HINT = 'Shorten the schema or table name.';
    END IF;
    SELECT tbl INTO v_other FROM pgshadow.tracked WHERE shadow = v_shadow AND tbl <> p_tbl;
    IF FOUND THEN
        RAISE EXCEPTION 'pgshadow: cannot track %: its shadow table name "%" is already used by %', p_tbl, v_shadow, v_other
            USING ERRCODE = 'duplicate_table';
    END IF;
    -- A new shadow and the names derived from it (partitions, index, versions
    -- table) must all be free: <schema>__<table> names collide, so another
    -- table's shadow could be named like this table's partition or the
    -- reverse. Taking an existing relation as the shadow would grant this
    -- table's owner SELECT and INSERT on another table's keys; leaving a
    -- partition out would make every write of this table fail.
    IF NOT v_known THEN
        SELECT string_agg(format('pgshadow.%I', n), ', ') INTO v_def
          FROM unnest(ARRAY[v_shadow, v_shadow || '_g0', v_shadow || '_g1',
                            left(v_shadow, 59) || '_xid', left(v_shadow, 59) || '_ver']) n
         WHERE EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = 'pgshadow'::regnamespace AND c.relname = n);
        IF v_def IS NOT NULL THEN
            RAISE EXCEPTION 'pgshadow: cannot track %: its shadow table "%" needs the name(s) %, which already exist(s)', p_tbl, v_shadow, v_def
                USING ERRCODE = 'duplicate_table',
                      DETAIL = 'Shadow tables are named <schema>__<table>, with partitions <shadow>_g0 and _g1, index <shadow>_xid and versions table <shadow>_ver; another tracked table uses the name.',
                      HINT = 'Rename the table (or its schema).';
        END IF;
    END IF;

    v_list := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_cols) c);

    step := 0; kind := 'shadow';
    -- Steps that lock an existing shadow table are left out when it exists:
    -- CREATE INDEX IF NOT EXISTS would still wait for every open writer.
    IF to_regclass(format('pgshadow.%I', v_shadow)) IS NULL THEN
    step := step + 1;
    -- Two partitions by generation: writers append to the current one, and a
    -- purge truncates the other once everything in it is shipped, then makes
    -- it current. A busy table's shadow is so emptied without row deletes
    -- (no dead rows, no bloat), and without ever locking out its writers.
    sql := format('CREATE TABLE IF NOT EXISTS pgshadow.%I (%s, shadow_op "char" NOT NULL,'
                  ' shadow_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),'
                  ' shadow_at timestamptz NOT NULL DEFAULT statement_timestamp(),'
                  ' shadow_gen smallint NOT NULL) PARTITION BY LIST (shadow_gen)',
                  v_shadow,
                  (SELECT string_agg(format('%I %s', c, t), ', ') FROM unnest(v_cols, v_types) AS u(c, t)));
    RETURN NEXT;
    step := step + 1;
    sql := format('CREATE TABLE IF NOT EXISTS pgshadow.%I PARTITION OF pgshadow.%I FOR VALUES IN (0)', v_shadow || '_g0', v_shadow);
    RETURN NEXT;
    step := step + 1;
    sql := format('CREATE TABLE IF NOT EXISTS pgshadow.%I PARTITION OF pgshadow.%I FOR VALUES IN (1)', v_shadow || '_g1', v_shadow);
    RETURN NEXT;
    step := step + 1;
    sql := format('CREATE INDEX IF NOT EXISTS %I ON pgshadow.%I (shadow_xid)', left(v_shadow, 59) || '_xid', v_shadow);
    RETURN NEXT;
    step := step + 1;
    sql := format('COMMENT ON TABLE pgshadow.%I IS %L', v_shadow, format('pgshadow: keys changed in %s', p_tbl));
    RETURN NEXT;
    END IF;
    IF to_regclass(format('pgshadow.%I', v_shadow)) IS NULL
       OR NOT has_table_privilege(v_rel.owner, format('pgshadow.%I', v_shadow), 'SELECT')
       OR NOT has_table_privilege(v_rel.owner, format('pgshadow.%I', v_shadow), 'INSERT') THEN
        step := step + 1;
        -- the owner reads pending keys when exporting with its own rights, and
        -- the capture function (the owner's, SECURITY DEFINER) appends keys
        sql := format('GRANT SELECT, INSERT ON pgshadow.%I TO %I', v_shadow, v_rel.owner);
        RETURN NEXT;
    END IF;
    IF NOT v_known THEN
        step := step + 1;
        sql := format('INSERT INTO pgshadow.tracked (tbl, shadow, key_cols, key_types, tracked_by)'
                      ' VALUES (%L::regclass, %L, %L, %L, pgshadow._caller())',
                      p_tbl::oid, v_shadow, v_cols, v_types);
        RETURN NEXT;
    END IF;

    -- The table's capture function (see sql/30_capture.sql), created or
    -- replaced by pgshadow's owner and handed to the table's owner: it runs
    -- with her rights, and writers need none on the shadow table.
    v_fn := pgshadow._capture_fn_name(v_shadow);
    v_def := pgshadow._capture_fn(v_shadow, v_cols, coalesce(v_old.gen, 0::smallint), coalesce(v_old.notify, false), v_part);
    SELECT p.oid, p.proowner::regrole::name, p.prosrc INTO v_proc
      FROM pg_proc p WHERE p.pronamespace = 'pgshadow'::regnamespace AND p.proname = v_fn AND p.pronargs = 0;
    -- rerun only when the body differs: CREATE OR REPLACE would need the
    -- function's owner's rights, which a non-superuser pgshadow owner may lack
    IF v_proc.oid IS NULL OR v_proc.prosrc IS DISTINCT FROM substring(v_def FROM '\$pgshadow\$(.*)\$pgshadow\$') THEN
        step := step + 1;
        sql := v_def;
        RETURN NEXT;
    END IF;
    IF v_proc.oid IS NULL THEN
        step := step + 1;
        -- trigger functions need no EXECUTE to fire; without it no one else can
        -- attach this function to a table of theirs (it would refuse anyway)
        sql := format('REVOKE ALL ON FUNCTION pgshadow.%I() FROM PUBLIC', v_fn);
        RETURN NEXT;
    END IF;
    IF v_proc.oid IS NULL OR v_proc.proowner IS DISTINCT FROM v_rel.owner THEN
        step := step + 1;
        sql := format('ALTER FUNCTION pgshadow.%I() OWNER TO %I', v_fn, v_rel.owner);
        RETURN NEXT;
    END IF;

    kind := 'trigger';
    -- a partitioned table: every member of its tree, the root first
    FOR v_member IN
        SELECT p_tbl WHERE NOT v_part
        UNION ALL
        (SELECT t.relid FROM pg_partition_tree(p_tbl) t WHERE v_part ORDER BY t.level, t.relid::oid)
    LOOP
        FOR sql IN SELECT pgshadow._trigger_plan(v_member, 'pgshadow.' || quote_ident(v_fn), v_cols, v_part) LOOP
            step := step + 1;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$$;
