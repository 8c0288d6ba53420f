-- Row filters, continued (sql/25_filter_lex.sql says what a filter may hold):
-- the types of parsed nodes, the casts between them and the nodes' SQL.

-- A built-in type as a cast target, spelled so that no search_path is
-- consulted: SQL keyword spellings (integer, character varying(n), timestamp
-- with time zone, ...) are bound to pg_catalog by the grammar; every other
-- type is qualified with pg_catalog.
CREATE FUNCTION pgshadow._filter_typename(p_type oid, p_typmod integer) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN f ~ '^(bigint|bit|boolean|character|double precision|integer|interval|numeric|real|smallint|time|timestamp)([ ([]|$)'
                THEN f ELSE 'pg_catalog.' || f END
      FROM format_type(p_type, coalesce(p_typmod, -1)) f
$$;

-- Refuses a type that is not built in: a column, a cast or a constant of it
-- could run a role's code (input, output and cast functions, operators).
-- Domains, enums, composite and pseudo types are refused too, and so are the
-- reg* name-lookup types as cast targets.
CREATE FUNCTION pgshadow._filter_check_type(p_tbl regclass, p_at integer, p_type oid, p_what text, p_cast boolean)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v pg_type;
BEGIN
    SELECT * INTO v FROM pg_type WHERE oid = p_type;
    IF p_type >= 16384 OR v.typtype NOT IN ('b', 'r', 'm') OR v.typnamespace <> 'pg_catalog'::regnamespace THEN
        PERFORM pgshadow._filter_error(p_tbl, p_at, format(
            '%s has type %s, which is not a built-in base type (domains, enums, composite and user-defined types are not allowed)',
            p_what, format_type(p_type, NULL)));
    END IF;
    IF p_cast AND v.typname ~ '^_?reg' THEN
        PERFORM pgshadow._filter_error(p_tbl, p_at, format('casts to %s are not allowed (they look names up)', format_type(p_type, NULL)));
    END IF;
END
$$;

-- The type of an expression, without evaluating it on any row: the
-- expression sits in a subquery that returns nothing, outer-joined to one
-- row. Also the check that the node is valid SQL (operator or function
-- exists); a failure is reported at the node's position.
CREATE FUNCTION pgshadow._filter_typeof(p_tbl regclass, p_at integer, p_sql text) RETURNS oid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v oid;
BEGIN
    -- p_sql is a canonical node: built-in immutable parts only (see _filter)
    EXECUTE format('SELECT pg_catalog.pg_typeof(s.x)::pg_catalog.oid FROM (SELECT) d'
                   ' LEFT JOIN (SELECT %s AS x FROM %s t LIMIT 0) s ON true', p_sql, p_tbl)
       INTO v;
    RETURN v;
EXCEPTION WHEN OTHERS THEN
    PERFORM pgshadow._filter_error(p_tbl, p_at, SQLERRM);
    RETURN NULL;
END
$$;

-- The type the untyped literals of a list take (IN (...), COALESCE(...)):
-- that of its first typed item, else text.
CREATE FUNCTION pgshadow._filter_list_type(p_tbl regclass, p_at integer, p_sqls text[], p_unks boolean[]) RETURNS oid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    FOR n IN 1 .. coalesce(cardinality(p_sqls), 0) LOOP
        IF NOT p_unks[n] THEN
            RETURN pgshadow._filter_typeof(p_tbl, p_at, p_sqls[n]);
        END IF;
    END LOOP;
    RETURN 'text'::regtype;
END
$$;

-- Evaluates an expression without columns once and returns it as a typed
-- constant, so what is stored does not depend on the exporting session.
CREATE FUNCTION pgshadow._filter_fold(p_tbl regclass, p_at integer, p_sql text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_type oid := pgshadow._filter_typeof(p_tbl, p_at, p_sql);
    v_null boolean;
    v_text text;
BEGIN
    PERFORM pgshadow._filter_check_type(p_tbl, p_at, v_type, 'a constant', false);
    BEGIN
        EXECUTE format('SELECT s.x IS NULL, pg_catalog.format(%L, s.x) FROM (SELECT %s AS x) s', '%s', p_sql)
           INTO v_null, v_text;
    EXCEPTION WHEN OTHERS THEN
        PERFORM pgshadow._filter_error(p_tbl, p_at, SQLERRM);
    END;
    RETURN format('CAST(%s AS %s)', CASE WHEN v_null THEN 'NULL' ELSE quote_literal(v_text) END,
                  pgshadow._filter_typename(v_type, -1));
END
$$;

-- An operand whose type the context decides (a string literal or NULL)
-- given type p_type: a typed constant.
CREATE FUNCTION pgshadow._filter_coerce(p_tbl regclass, p_at integer, p_sql text, p_unk boolean, p_type oid)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT p_unk THEN
        RETURN p_sql;
    END IF;
    PERFORM pgshadow._filter_check_type(p_tbl, p_at, p_type, 'a constant', true);
    RETURN pgshadow._filter_fold(p_tbl, p_at, format('CAST(%s AS %s)', p_sql, pgshadow._filter_typename(p_type, -1)));
END
$$;

-- A node built from checked parts: its type is checked (it must be valid
-- SQL), and without columns it is folded into a constant.
CREATE FUNCTION pgshadow._filter_node(p_tbl regclass, p_at integer, p_sql text, p_cnst boolean,
    OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    unk := false;
    cnst := p_cnst;
    IF p_cnst THEN
        sql := pgshadow._filter_fold(p_tbl, p_at, p_sql);
    ELSE
        PERFORM pgshadow._filter_typeof(p_tbl, p_at, p_sql);
        sql := p_sql;
    END IF;
END
$$;

-- A type name after :: or AS: words, an optional schema, typmods, [].
-- Resolved with to_regtype (a parse, under the pinned search_path) and
-- checked to be built in; returns its canonical spelling.
-- Length: a type name has many spellings (SQL's multi-word names,
-- typmods, arrays, a schema); each is a short branch of one loop.
CREATE FUNCTION pgshadow._filter_typname(p_tbl regclass, p_k text[], p_v text[], p_pos integer[],
    INOUT i integer, OUT typ oid, OUT typmod integer, OUT txt text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_at    integer := p_pos[i];
    v_name  text := '';
    v_words text[] := '{}';
    v_mods  text[] := '{}';
    v_arr   boolean := false;
    v_in    name;
BEGIN
    LOOP
        IF (p_k[i] = 'id' AND p_v[i] NOT IN ('and', 'or', 'is', 'not', 'in', 'between', 'like', 'ilike', 'collate',
                                            'as', 'isnull', 'notnull', 'similar', 'escape', 'operator', 'from'))
           OR p_k[i] = 'qid' THEN
            EXIT WHEN v_arr OR cardinality(v_mods) > 0 AND p_v[i] NOT IN ('with', 'without', 'time', 'zone');
            v_name := v_name || CASE WHEN v_name = '' OR right(v_name, 1) = '.' THEN '' ELSE ' ' END
                             || CASE WHEN p_k[i] = 'id' THEN p_v[i] ELSE quote_ident(p_v[i]) END;
            v_words := v_words || p_v[i];
        ELSIF p_k[i] = 'p' AND p_v[i] = '.' AND v_name <> '' AND NOT v_arr THEN
            v_name := v_name || '.';
        ELSIF p_k[i] = 'p' AND p_v[i] = '(' AND v_name <> '' AND cardinality(v_mods) = 0 AND NOT v_arr THEN
            LOOP
                i := i + 1;
                IF p_k[i] <> 'num' OR p_v[i] !~ '^[0-9]+$' THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'a type modifier must be an integer');
                END IF;
                v_mods := v_mods || p_v[i];
                i := i + 1;
                EXIT WHEN p_k[i] = 'p' AND p_v[i] = ')';
                IF NOT (p_k[i] = 'p' AND p_v[i] = ',') THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('expected , or ) in type modifiers, found %s',
                                                                            pgshadow._filter_tok(p_k[i], p_v[i])));
                END IF;
            END LOOP;
            v_name := v_name || '(' || array_to_string(v_mods, ',') || ')';
        ELSIF p_k[i] = 'p' AND p_v[i] = '[' AND v_name <> '' THEN
            IF p_k[i + 1] = 'num' THEN
                i := i + 1;
            END IF;
            IF NOT (p_k[i + 1] = 'p' AND p_v[i + 1] = ']') THEN
                PERFORM pgshadow._filter_error(p_tbl, p_pos[i + 1], 'expected ] in an array type');
            END IF;
            i := i + 1;
            v_name := v_name || '[]';
            v_arr := true;
        ELSE
            EXIT;
        END IF;
        i := i + 1;
    END LOOP;
    IF v_name = '' OR right(v_name, 1) = '.' THEN
        PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('expected a type name, found %s', pgshadow._filter_tok(p_k[i], p_v[i])));
    END IF;
    IF v_words && ARRAY['year', 'month', 'day', 'hour', 'minute', 'second'] THEN
        PERFORM pgshadow._filter_error(p_tbl, v_at, 'interval fields are not supported');
    END IF;
    BEGIN
        typ := to_regtype(v_name);
    EXCEPTION WHEN OTHERS THEN
        typ := NULL;
    END;
    IF typ IS NULL THEN
        PERFORM pgshadow._filter_error(p_tbl, v_at, format('type %s does not exist', v_name));
    END IF;
    PERFORM pgshadow._filter_check_type(p_tbl, v_at, typ, 'the cast', true);
    typmod := -1;
    IF cardinality(v_mods) > 0 THEN
        SELECT p.proname INTO v_in FROM pg_type y JOIN pg_proc p ON p.oid = y.typmodin WHERE y.oid = typ;
        IF v_in IS NULL THEN
            PERFORM pgshadow._filter_error(p_tbl, v_at, format('type %s takes no modifiers', format_type(typ, NULL)));
        END IF;
        BEGIN
            -- the type is built in (checked above), so is its typmod input function
            EXECUTE format('SELECT pg_catalog.%I($1::pg_catalog.cstring[])', v_in) INTO typmod USING v_mods;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pgshadow._filter_error(p_tbl, v_at, SQLERRM);
        END;
    END IF;
    txt := pgshadow._filter_typename(typ, typmod);
END
$$;

-- CAST(x AS type). A cast of a column runs a cast function or the type's
-- input/output functions; each must be immutable, as for any function.
CREATE FUNCTION pgshadow._filter_cast(p_tbl regclass, p_at integer, p_x text, p_xu boolean, p_xc boolean,
    p_type oid, p_typename text, OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_src  oid;
    v_vol  "char"[];
    v_cast pg_cast;
BEGIN
    IF NOT p_xu AND NOT p_xc THEN
        v_src := pgshadow._filter_typeof(p_tbl, p_at, p_x);
        IF v_src <> p_type THEN
            SELECT * INTO v_cast FROM pg_cast WHERE castsource = v_src AND casttarget = p_type;
            IF FOUND THEN
                v_vol := CASE v_cast.castmethod
                         WHEN 'f' THEN ARRAY[(SELECT provolatile FROM pg_proc WHERE oid = v_cast.castfunc)]
                         WHEN 'i' THEN ARRAY[(SELECT provolatile FROM pg_proc WHERE oid = (SELECT typoutput FROM pg_type WHERE oid = v_src)),
                                             (SELECT provolatile FROM pg_proc WHERE oid = (SELECT typinput FROM pg_type WHERE oid = p_type))]
                         ELSE '{}' END;
            ELSE
                -- no catalogued cast: PostgreSQL converts through text
                v_vol := ARRAY[(SELECT provolatile FROM pg_proc WHERE oid = (SELECT typoutput FROM pg_type WHERE oid = v_src)),
                               (SELECT provolatile FROM pg_proc WHERE oid = (SELECT typinput FROM pg_type WHERE oid = p_type))];
            END IF;
            IF EXISTS (SELECT FROM unnest(v_vol) x WHERE x IS DISTINCT FROM 'i') THEN
                PERFORM pgshadow._filter_error(p_tbl, p_at, format('the cast from %s to %s is not immutable',
                                                                    format_type(v_src, NULL), format_type(p_type, NULL)));
            END IF;
        END IF;
    END IF;
    SELECT * INTO sql, unk, cnst
      FROM pgshadow._filter_node(p_tbl, p_at, format('CAST(%s AS %s)', p_x, p_typename), p_xu OR p_xc);
END
$$;
