-- Capture. Each tracked table gets a trigger function of its own,
-- pgshadow.<shadow>_fn(), made by shadow_track from the template in
-- pgshadow._capture_fn() below: static SQL naming the table's shadow and key
-- columns, which PL/pgSQL plans once per session, where a generic function
-- would have to EXECUTE (plan anew) on every statement. No user writes or
-- maintains it; it is replaced whenever the table is tracked again.
--
-- Statement-level AFTER triggers with transition tables call it, so a
-- statement touching a million rows costs one INSERT ... SELECT into the
-- shadow table, not a million trigger calls.
--
-- Rights: the function is SECURITY DEFINER and owned by the *table's owner*,
-- who gets INSERT on her own shadow table (and nothing else). Writers of the
-- table need no rights on the shadow, and whatever code the table owner
-- controls that capture may reach (a key domain's CHECK, a cast into the
-- shadow's key type after the key's type changed, an equality operator) runs
-- as the table owner, never as pgshadow's owner. See docs/DESIGN.md.

-- Loop prevention, the one rule every capture path uses: a session that
-- marked itself as applying replicated changes (pgshadow.origin set) skips
-- capture of p_tbl only if the session's role (SET ROLE role, else the login
-- role: pgshadow._caller()) is a member of the role owning p_tbl. The owner
-- could drop the triggers anyway; a mere writer must not hide its writes from
-- replication, and current_user does not count (inside a SECURITY DEFINER
-- function of the owner it is the owner, whoever called).
CREATE FUNCTION pgshadow._origin_skips(p_tbl oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(current_setting('pgshadow.origin', true), '') <> ''
       AND coalesce(pg_has_role(pgshadow._caller(),
                                (SELECT c.relowner FROM pg_class c WHERE c.oid = p_tbl), 'USAGE'), false)
$$;

-- The capture function of a table: its name (in schema pgshadow) and the
-- CREATE statement shadow_track runs. p_shadow is the table's shadow table,
-- p_cols its key columns (the shadow's key columns have the same names).
CREATE FUNCTION pgshadow._capture_fn_name(p_shadow text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    -- shadow names are at most 60 bytes (the partitions add _g0/_g1)
    SELECT p_shadow || '_fn'
$$;

-- p_gen is the shadow partition writers append to and p_notify whether an
-- async subscription waits for a NOTIFY (pgshadow.tracked's gen and notify):
-- both are written into the body as constants, and whoever changes them in
-- the catalog replaces the function in the same transaction
-- (pgshadow._replace_capture). Reading them from the catalog instead cost
-- each captured statement a subquery, about 30k instructions (a fifth of
-- capture; docs/DESIGN.md, Capture).
-- p_partitioned: the function of a partitioned table, attached to every
-- member of its partition tree (see docs/DESIGN.md, "Partitioned tables").
-- Length: most of it is the template of the generated function, kept
-- whole so it reads as the function it makes.
CREATE FUNCTION pgshadow._capture_fn(p_shadow text, p_cols name[], p_gen smallint, p_notify boolean,
                                     p_partitioned boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    v_list  text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_cols) c);
    v_old   text := (SELECT string_agg(format('OLD.%I', c), ', ') FROM unnest(p_cols) c);
    v_ins   text;
    v_gen   text;
    v_moves text := '';
    v_trunc text := '';
BEGIN
    IF p_gen IS NULL OR p_gen NOT IN (0, 1) OR p_notify IS NULL THEN
        RAISE EXCEPTION 'pgshadow: capture of pgshadow.%: generation % and notify % must be 0 or 1 and not null',
            quote_ident(p_shadow), p_gen, p_notify;
    END IF;
    -- The body is dollar-quoted with $pgshadow$ and holds these names (quoted
    -- as identifiers and literals, which does not escape a dollar quote): a
    -- name containing the tag would end the body early, and the rest of it
    -- would run as SQL with the rights of whoever runs the text.
    IF strpos(p_shadow, '$pgshadow$') > 0
       OR EXISTS (SELECT FROM unnest(p_cols) c WHERE strpos(c, '$pgshadow$') > 0) THEN
        RAISE EXCEPTION 'pgshadow: shadow table name % or key column names % contain "$pgshadow$"', quote_ident(p_shadow), p_cols
            USING ERRCODE = 'invalid_name';
    END IF;
    v_ins := format('INSERT INTO pgshadow.%I (%s, shadow_op, shadow_gen, shadow_xid, shadow_at)', p_shadow, v_list);
    v_gen := format('%s::pg_catalog.int2', p_gen);
    IF p_partitioned THEN
        -- A row moved to another partition by an UPDATE is deleted from one
        -- partition and inserted into the other: no row UPDATE trigger (the
        -- key trigger) fires for it, only the statement triggers of the table
        -- the UPDATE names, whose OLD TABLE holds the moved rows' old keys.
        -- Only partitioned members of the tree (a leaf cannot move rows) get
        -- OLD TABLE, and the argument 'moves'; their old keys not among the
        -- new ones are the moved (or otherwise re-keyed) rows.
        v_moves := format(E'\n        IF TG_NARGS OPERATOR(pg_catalog.>) 0 THEN\n'
                          '            %1$s SELECT %2$s, ''D'', %3$s, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp()'
                          ' FROM (SELECT %2$s FROM pgshadow_old EXCEPT SELECT %2$s FROM pgshadow_new) pgshadow_moved;\n'
                          '        END IF;', v_ins, v_list, v_gen);
        -- TRUNCATE fires the BEFORE TRUNCATE triggers of every member of the
        -- tree it empties, the named table's first. The root records 'T'
        -- (the target is emptied); a leaf truncated by itself records its
        -- keys as deleted (a query of its own: rare, and the leaf is known
        -- only at run time), unless this transaction recorded 'T' already:
        -- then the target is emptied and every row written since has its key
        -- recorded. A partitioned member records nothing: its leaves fire.
        v_trunc := format(E'IF pg_catalog.pg_partition_root(TG_RELID) OPERATOR(pg_catalog.<>) TG_RELID THEN\n'
                          '            IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) TG_RELID) OPERATOR(pg_catalog.=) ''r''\n'
                          '               AND NOT EXISTS (SELECT FROM pgshadow.%1$I WHERE shadow_op OPERATOR(pg_catalog.=) ''T'''
                          ' AND shadow_xid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()) THEN\n'
                          '                EXECUTE pg_catalog.format(%2$L, TG_RELID::pg_catalog.regclass) USING %3$s;\n'
                          '            END IF;\n'
                          '            RETURN NULL;\n'
                          '        END IF;\n        ',
                          p_shadow,
                          -- run through format(): a % in a name is doubled
                          replace(v_ins || format(' SELECT %s, ''D'', $1, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp()', v_list),
                                  '%', '%%') || ' FROM %s',
                          v_gen);
    END IF;
    -- The body below is a template: %1$s .. %9$s are filled in at the end.
    -- Every name in it is schema-qualified (and the search_path pinned).
    -- Each event is one INSERT ... SELECT with static SQL, planned once per
    -- session: no EXECUTE, no other query, no catalog lookup.
    RETURN format($template$CREATE OR REPLACE FUNCTION pgshadow.%1$I() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgshadow$
-- pgshadow capture of the table whose shadow is pgshadow.%2$I, made by
-- shadow_track (pgshadow._capture_fn): replaced when the table is tracked
-- again, when a purge moves writers to the other partition (the generation
-- written below) and when its first async subscription comes or its last goes.
BEGIN
    -- replicated changes applied by the table owner's session are not captured
    -- again; the setting is tested first, and apart (NULL when never set: an
    -- AND would go on to call the check), so writers do not pay for it
    IF pg_catalog.current_setting('pgshadow.origin', true) OPERATOR(pg_catalog.<>) '' THEN
        IF pgshadow._origin_skips(TG_RELID) THEN
            RETURN NULL;
        END IF;
    END IF;%6$s
    IF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
        -- the key trigger: this row's key changed (by the SET list, a BEFORE
        -- trigger or ON CONFLICT DO UPDATE), so its old key may be gone
        INSERT INTO pgshadow.%2$I (%4$s, shadow_op, shadow_gen, shadow_xid, shadow_at)
        VALUES (%5$s, 'D', %7$s, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp());
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        %3$s SELECT %4$s, 'U', %7$s, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_new;%8$s
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        %3$s SELECT %4$s, 'I', %7$s, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_new;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        %3$s SELECT %4$s, 'D', %7$s, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_old;
    ELSE
        %9$sINSERT INTO pgshadow.%2$I (shadow_op, shadow_gen, shadow_xid, shadow_at)
        SELECT 'T', %7$s, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp();
    END IF;
    RETURN NULL;
END
$pgshadow$$template$,
        pgshadow._capture_fn_name(p_shadow), p_shadow, v_ins, v_list, v_old,
        -- an async subscription's `pgshadow run` waits: NOTIFY, sent at
        -- commit and once per transaction however many statements ask
        CASE WHEN p_notify THEN E'\n    PERFORM pg_catalog.pg_notify(''pgshadow'', '''');' ELSE '' END,
        v_gen, v_moves, v_trunc);
END
$fn$;

-- The generic capture function of earlier versions, which a table's triggers
-- may still name until pgshadow._install_capture() converts the table. It no
-- longer captures anything, and refuses the write so no change goes unrecorded.
CREATE FUNCTION pgshadow.capture() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'pgshadow: table %.% has a capture trigger of pgshadow.capture(), which no longer captures',
        TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING HINT = 'Run shadow_track() on it (its owner), or drop its pgshadow_capture_* triggers.';
END
$$;

-- pgshadow.capture_key(), the statement-level key trigger of earlier
-- versions, is gone: the table's own function records old keys itself, from
-- a row trigger that fires only for rows whose key changed.

-- Replaces a tracked table's capture function with one for its catalog row's
-- current generation and notify flag; called in the transaction that changes
-- them (under the row's lock), so the two never disagree once it commits.
-- Only an existing function is replaced (it keeps its owner, the table's):
-- one made here would belong to pgshadow's owner and capture with its rights.
-- Writers still running the old body append to the partition they read
-- before, as a writer that read the generation just before a switch did:
-- the purge never truncates a partition holding unshipped rows or a writer's
-- lock (see pgshadow._purge), so that costs at most a later truncation.
CREATE FUNCTION pgshadow._replace_capture(p_tr pgshadow.tracked) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = 'pgshadow'::regnamespace
                                      AND p.proname = pgshadow._capture_fn_name(p_tr.shadow) AND p.pronargs = 0) THEN
        -- a partitioned table's function has the partitioned body
        EXECUTE pgshadow._capture_fn(p_tr.shadow, p_tr.key_cols, p_tr.gen, p_tr.notify,
                                     (SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = p_tr.tbl));
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._replace_capture(pgshadow.tracked) FROM PUBLIC;

-- Keeps tracked.notify, and the capture function that reads it, in step with
-- the table's async subscriptions.
CREATE FUNCTION pgshadow._refresh_notify(p_tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tr pgshadow.tracked;
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    UPDATE pgshadow.tracked t
       SET notify = NOT t.notify
     WHERE t.tbl = p_tbl
       AND t.notify <> EXISTS (SELECT FROM pgshadow.subscription s WHERE s.tbl = p_tbl AND s.mode = 'async')
    RETURNING * INTO v_tr;
    IF FOUND THEN
        PERFORM pgshadow._replace_capture(v_tr);
    END IF;
END
$$;
