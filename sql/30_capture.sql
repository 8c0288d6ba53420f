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

CREATE FUNCTION pgshadow._capture_fn(p_shadow text, p_cols name[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    v_list  text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_cols) c);
    v_old   text := (SELECT string_agg(format('o.%I', c), ', ') FROM unnest(p_cols) c);
    v_match text := (SELECT string_agg(format('n.%1$I OPERATOR(pg_catalog.=) o.%1$I', c), ' AND ') FROM unnest(p_cols) c);
    v_ins   text;
BEGIN
    v_ins := format('INSERT INTO pgshadow.%I (%s, shadow_op, shadow_gen, shadow_xid, shadow_at)', p_shadow, v_list);
    -- The body below is a template: %1$s .. %6$s are filled in at the end.
    -- Every name in it is schema-qualified (and the search_path pinned), and
    -- the function finds its table's catalog row by TG_RELID *and* its shadow
    -- name, so attached to another table it refuses instead of writing.
    RETURN format($template$CREATE OR REPLACE FUNCTION pgshadow.%1$I() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgshadow$
-- pgshadow capture of the table whose shadow is pgshadow.%2$I, made by
-- shadow_track (pgshadow._capture_fn): replaced when the table is tracked again.
DECLARE
    v_gen    smallint;
    v_notify boolean;
    v_before boolean;
BEGIN
    -- replicated changes applied by the table owner's session are not captured
    -- again; the setting is tested first, and apart (NULL when never set: an
    -- AND would go on to call the check), so writers do not pay for it
    IF pg_catalog.current_setting('pgshadow.origin', true) OPERATOR(pg_catalog.<>) '' THEN
        IF pgshadow._origin_skips(TG_RELID) THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        -- a BEFORE ROW UPDATE trigger may change a key without naming it
        SELECT t.gen, t.notify,
               EXISTS (SELECT FROM pg_catalog.pg_trigger g
                        WHERE g.tgrelid OPERATOR(pg_catalog.=) TG_RELID
                          AND (g.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 19) OPERATOR(pg_catalog.=) 19
                          AND g.tgenabled OPERATOR(pg_catalog.<>) 'D')
          INTO v_gen, v_notify, v_before
          FROM pgshadow.tracked t
         WHERE t.tbl OPERATOR(pg_catalog.=) TG_RELID AND t.shadow OPERATOR(pg_catalog.=) %3$L;
    ELSE
        SELECT t.gen, t.notify INTO v_gen, v_notify
          FROM pgshadow.tracked t
         WHERE t.tbl OPERATOR(pg_catalog.=) TG_RELID AND t.shadow OPERATOR(pg_catalog.=) %3$L;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: table %%.%% is not tracked with shadow table pgshadow.%%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, %3$L
            USING HINT = 'Run shadow_track() on it, or drop its pgshadow_capture_* triggers.';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        %4$s SELECT %5$s, 'I', v_gen, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_new;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        -- The anti-join that finds old keys costs more than the rest of the
        -- capture; skip it when no key can have changed: the key trigger
        -- (UPDATE OF the key columns) did not fire for this table in this
        -- transaction, and no BEFORE ROW UPDATE trigger could have changed NEW.
        IF v_before OR pg_catalog.current_setting('pgshadow.key_update', true) OPERATOR(pg_catalog.=) TG_RELID::pg_catalog.text THEN
            %4$s SELECT %5$s, 'U', v_gen, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_new
            UNION ALL SELECT %6$s, 'D', v_gen, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp()
                        FROM pgshadow_old o WHERE NOT EXISTS (SELECT FROM pgshadow_new n WHERE %7$s);
        ELSE
            %4$s SELECT %5$s, 'U', v_gen, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_new;
        END IF;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        %4$s SELECT %5$s, 'D', v_gen, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp() FROM pgshadow_old;
    ELSE
        INSERT INTO pgshadow.%2$I (shadow_op, shadow_gen, shadow_xid, shadow_at)
        VALUES ('T', v_gen, pg_catalog.pg_current_xact_id(), pg_catalog.statement_timestamp());
    END IF;
    IF v_notify THEN
        -- wakes `pgshadow run`; notifications are sent at commit, one per transaction
        PERFORM pg_catalog.pg_notify('pgshadow', '');
    END IF;
    RETURN NULL;
END
$pgshadow$$template$,
        pgshadow._capture_fn_name(p_shadow), p_shadow, p_shadow, v_ins, v_list, v_old, v_match);
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

-- Fires (AFTER UPDATE OF the key columns, before pgshadow_capture_upd: triggers
-- fire in name order) when an UPDATE names a key column: tells capture that
-- old keys must be recorded. Stays set until the transaction ends.
CREATE FUNCTION pgshadow.capture_key() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('pgshadow.key_update', TG_RELID::text, true);
    RETURN NULL;
END
$$;
