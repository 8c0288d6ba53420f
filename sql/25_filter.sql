-- Row filters: parsed, never executed as given.
--
-- A row filter is pasted into the SQL that reads rows for an export, which
-- runs with the rights of whoever exports. So the text a table owner gives is
-- never run (nor pasted) as it is: pgshadow._filter() tokenizes and parses it
-- here, refuses everything but simple expressions over the row's columns,
-- constants and built-in immutable functions and operators (the rule of
-- native logical replication's publication WHERE clauses), and stores a
-- canonical rendering built from the parse:
--   columns      t."col"                         (quote_ident, bound to alias t)
--   constants    CAST('text' AS type)            (quote_literal, a built-in type)
--   operators    (a OPERATOR(pg_catalog.=) b)    (never resolved through search_path)
--   functions    pg_catalog.name(args)           (the one that runs built in and immutable)
-- Every node is parenthesised, so the whole is one expression whatever the
-- precedence of what it is pasted next to. Expressions without columns are
-- evaluated once here (under the fixed settings of _filter) and stored as
-- typed constants, as the planner folds a publication's constants.
--
-- Building blocks take the token arrays (kind, value, character position)
-- and an index; each parse function returns the node's SQL, whether it is a
-- bare string/NULL literal whose type the context decides (unk), and whether
-- it holds no column (cnst).

-- Raises the one error every refusal uses: the table, the cause, the place.
CREATE FUNCTION pgshadow._filter_error(p_tbl regclass, p_at integer, p_msg text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'pgshadow: invalid row_filter for %: % (at character %)', p_tbl, p_msg, p_at
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'A row filter may hold the table''s columns, constants, and built-in immutable '
                     'functions and operators (see "Row filters" in the README).';
END
$$;

-- Splits a filter into tokens the way PostgreSQL's lexer would, refusing
-- what a filter never needs: comments, semicolons, dollar quotes and
-- parameters, prefixed strings and identifiers (U&, B, X) and any other
-- character. Kinds: id (unquoted, ASCII-lowercased), qid (double-quoted),
-- num, str (value decoded), op (operator characters), p (punctuation), end.
CREATE FUNCTION pgshadow._filter_tokens(p_tbl regclass, p_src text,
    OUT k text[], OUT v text[], OUT pos integer[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n   integer := length(p_src);
    i   integer := 1;
    j   integer;
    c   text;
    s   text;
    q   text;
    esc boolean;
    opchars constant text := '~!@#^&|`?+-*/%<>=';
BEGIN
    k := '{}'; v := '{}'; pos := '{}';
    WHILE i <= n LOOP
        c := substr(p_src, i, 1);
        IF c IN (' ', E'\t', E'\n', E'\r', E'\f', chr(11)) THEN
            i := i + 1;
            CONTINUE;
        END IF;
        esc := false;
        IF c ~ '[A-Za-z_]' OR ascii(c) > 127 THEN
            j := i + 1;
            WHILE j <= n AND (substr(p_src, j, 1) ~ '[A-Za-z0-9_$]' OR ascii(substr(p_src, j, 1)) > 127) LOOP
                j := j + 1;
            END LOOP;
            s := substr(p_src, i, j - i);
            IF j <= n AND substr(p_src, j, 1) IN ('''', '"', '&') THEN
                IF s IN ('E', 'e') AND substr(p_src, j, 1) = '''' THEN
                    esc := true;  -- E'...': read below, as quote_literal writes it
                    i := j;
                    c := '''';
                ELSE
                    PERFORM pgshadow._filter_error(p_tbl, i, format('%s%s... is not supported (only plain ''strings'' and "identifiers")',
                                                                     s, substr(p_src, j, 1)));
                END IF;
            ELSE
                k := k || 'id'::text;
                v := v || translate(s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
                pos := pos || i;
                i := j;
                CONTINUE;
            END IF;
        END IF;
        IF c = '''' OR c = '"' THEN
            -- a quoted string or identifier; the quote doubled stands for itself,
            -- and in E'' strings only \\ and \' (all quote_literal writes) are known
            q := '';
            j := i + 1;
            LOOP
                IF j > n THEN
                    PERFORM pgshadow._filter_error(p_tbl, CASE WHEN esc THEN i - 1 ELSE i END,
                        CASE WHEN c = '''' THEN 'unterminated quoted string' ELSE 'unterminated quoted identifier' END);
                END IF;
                s := substr(p_src, j, 1);
                IF s = c THEN
                    IF substr(p_src, j + 1, 1) = c THEN
                        q := q || c;
                        j := j + 2;
                    ELSE
                        EXIT;
                    END IF;
                ELSIF esc AND s = '\' THEN
                    IF substr(p_src, j + 1, 1) NOT IN ('\', '''') THEN
                        PERFORM pgshadow._filter_error(p_tbl, j, 'only the escapes \\ and \'' are supported in E'''' strings');
                    END IF;
                    q := q || substr(p_src, j + 1, 1);
                    j := j + 2;
                ELSE
                    q := q || s;
                    j := j + 1;
                END IF;
            END LOOP;
            IF c = '"' AND q = '' THEN
                PERFORM pgshadow._filter_error(p_tbl, i, 'zero-length quoted identifier');
            END IF;
            k := k || CASE WHEN c = '''' THEN 'str' ELSE 'qid' END;
            v := v || q;
            pos := pos || CASE WHEN esc THEN i - 1 ELSE i END;
            i := j + 1;
            CONTINUE;
        END IF;
        IF c ~ '[0-9]' OR (c = '.' AND substr(p_src, i + 1, 1) ~ '[0-9]') THEN
            s := substring(substr(p_src, i) FROM '^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?');
            j := i + length(s);
            IF j <= n AND (substr(p_src, j, 1) ~ '[A-Za-z0-9_$.]' OR ascii(substr(p_src, j, 1)) > 127) THEN
                PERFORM pgshadow._filter_error(p_tbl, i, format('invalid number %s', substr(p_src, i, j - i + 1)));
            END IF;
            k := k || 'num'::text;
            v := v || s;
            pos := pos || i;
            i := j;
            CONTINUE;
        END IF;
        IF strpos(opchars, c) > 0 THEN
            j := i;
            WHILE j <= n AND strpos(opchars, substr(p_src, j, 1)) > 0 LOOP
                IF substr(p_src, j, 2) IN ('--', '/*') THEN
                    PERFORM pgshadow._filter_error(p_tbl, j, 'comments are not allowed');
                END IF;
                j := j + 1;
            END LOOP;
            s := substr(p_src, i, j - i);
            -- the lexer's rule: a multi-character operator ends in + or - only
            -- if it holds one of ~ ! @ # ^ & | ` ? (so "=-1" is "=" and "-1")
            IF s !~ '[~!@#^&|`?]' THEN
                WHILE length(s) > 1 AND right(s, 1) IN ('+', '-') LOOP
                    s := left(s, -1);
                END LOOP;
            END IF;
            k := k || 'op'::text;
            v := v || s;
            pos := pos || i;
            i := i + length(s);
            CONTINUE;
        END IF;
        IF c IN ('(', ')', ',', '.', '[', ']') OR substr(p_src, i, 2) = '::' THEN
            s := CASE WHEN c = ':' THEN '::' ELSE c END;
            k := k || 'p'::text;
            v := v || s;
            pos := pos || i;
            i := i + length(s);
            CONTINUE;
        END IF;
        PERFORM pgshadow._filter_error(p_tbl, i,
            CASE c WHEN ';' THEN 'semicolons are not allowed'
                   WHEN '$' THEN 'dollar quotes and parameters are not allowed'
                   ELSE format('unexpected character %s', quote_literal(c)) END);
    END LOOP;
    k := k || 'end'::text;
    v := v || ''::text;
    pos := pos || (n + 1);
END
$$;

-- How a token is named in an error.
CREATE FUNCTION pgshadow._filter_tok(p_k text, p_v text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE p_k WHEN 'end' THEN 'end of filter'
                    WHEN 'str' THEN 'string ' || quote_literal(p_v)
                    WHEN 'qid' THEN 'identifier ' || quote_ident(p_v)
                    ELSE quote_literal(p_v) END
$$;

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

-- a OPERATOR(pg_catalog.op) b, for the operators the grammar knows. Every
-- pg_catalog operator of that name must be built in, and the one that
-- matches the operand types exactly (if any) immutable.
CREATE FUNCTION pgshadow._filter_binop(p_tbl regclass, p_at integer, p_op text,
    p_l text, p_lu boolean, p_lc boolean, p_r text, p_ru boolean, p_rc boolean,
    OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_lt oid;
    v_rt oid;
BEGIN
    IF p_lu AND p_ru THEN
        p_l := pgshadow._filter_coerce(p_tbl, p_at, p_l, true, 'text'::regtype);
        p_r := pgshadow._filter_coerce(p_tbl, p_at, p_r, true, 'text'::regtype);
    ELSIF p_lu THEN
        p_l := pgshadow._filter_coerce(p_tbl, p_at, p_l, true, pgshadow._filter_typeof(p_tbl, p_at, p_r));
    ELSIF p_ru THEN
        p_r := pgshadow._filter_coerce(p_tbl, p_at, p_r, true, pgshadow._filter_typeof(p_tbl, p_at, p_l));
    END IF;
    IF EXISTS (SELECT FROM pg_operator o WHERE o.oprname = p_op AND o.oprnamespace = 'pg_catalog'::regnamespace
                  AND (o.oid >= 16384 OR o.oprcode::oid >= 16384)) THEN
        PERFORM pgshadow._filter_error(p_tbl, p_at, format('operator %s has a variant that is not built in', p_op));
    END IF;
    v_lt := pgshadow._filter_typeof(p_tbl, p_at, p_l);
    v_rt := pgshadow._filter_typeof(p_tbl, p_at, p_r);
    IF EXISTS (SELECT FROM pg_operator o JOIN pg_proc f ON f.oid = o.oprcode
                WHERE o.oprname = p_op AND o.oprnamespace = 'pg_catalog'::regnamespace
                  AND o.oprleft = v_lt AND o.oprright = v_rt AND f.provolatile <> 'i') THEN
        PERFORM pgshadow._filter_error(p_tbl, p_at, format('operator %s for %s and %s is not immutable',
                                                            p_op, format_type(v_lt, NULL), format_type(v_rt, NULL)));
    END IF;
    SELECT * INTO sql, unk, cnst
      FROM pgshadow._filter_node(p_tbl, p_at, format('(%s OPERATOR(pg_catalog.%s) %s)', p_l, p_op, p_r), p_lc AND p_rc);
END
$$;

-- AND / OR of two operands, or NOT of the first (p_r NULL).
CREATE FUNCTION pgshadow._filter_logic(p_tbl regclass, p_at integer, p_op text,
    p_l text, p_lu boolean, p_lc boolean, p_r text, p_ru boolean, p_rc boolean,
    OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    p_l := pgshadow._filter_coerce(p_tbl, p_at, p_l, p_lu, 'boolean'::regtype);
    IF p_op = 'NOT' THEN
        SELECT * INTO sql, unk, cnst FROM pgshadow._filter_node(p_tbl, p_at, format('(NOT %s)', p_l), p_lc);
    ELSE
        p_r := pgshadow._filter_coerce(p_tbl, p_at, p_r, p_ru, 'boolean'::regtype);
        SELECT * INTO sql, unk, cnst
          FROM pgshadow._filter_node(p_tbl, p_at, format('(%s %s %s)', p_l, p_op, p_r), p_lc AND p_rc);
    END IF;
END
$$;

-- a OR b OR c (AND likewise) as one node: long chains stay one level deep.
CREATE FUNCTION pgshadow._filter_chain(p_tbl regclass, p_at integer, p_op text,
    p_sqls text[], p_unks boolean[], p_cnst boolean, OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_n integer;
BEGIN
    FOR v_n IN 1 .. cardinality(p_sqls) LOOP
        p_sqls[v_n] := pgshadow._filter_coerce(p_tbl, p_at, p_sqls[v_n], p_unks[v_n], 'boolean'::regtype);
    END LOOP;
    SELECT * INTO sql, unk, cnst
      FROM pgshadow._filter_node(p_tbl, p_at, '(' || array_to_string(p_sqls, ' ' || p_op || ' ') || ')', p_cnst);
END
$$;

-- x IS [NOT] NULL / TRUE / FALSE (p_what is what follows IS).
CREATE FUNCTION pgshadow._filter_is(p_tbl regclass, p_at integer, p_what text, p_x text, p_xu boolean, p_xc boolean,
    OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    p_x := pgshadow._filter_coerce(p_tbl, p_at, p_x, p_xu,
                                   CASE WHEN p_what LIKE '%NULL' THEN 'text' ELSE 'boolean' END::regtype);
    SELECT * INTO sql, unk, cnst FROM pgshadow._filter_node(p_tbl, p_at, format('(%s IS %s)', p_x, p_what), p_xc);
END
$$;

-- A type name after :: or AS: words, an optional schema, typmods, [].
-- Resolved with to_regtype (a parse, under the pinned search_path) and
-- checked to be built in; returns its canonical spelling.
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

-- Expects punctuation p at token i and steps over it.
CREATE FUNCTION pgshadow._filter_expect(p_tbl regclass, p_k text[], p_v text[], p_pos integer[], i integer, p text)
RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (p_k[i] IN ('p', 'id') AND p_v[i] = p) THEN
        PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('expected %s, found %s', p, pgshadow._filter_tok(p_k[i], p_v[i])));
    END IF;
    RETURN i + 1;
END
$$;

-- The recursive-descent parser. p_level is the precedence level being
-- parsed (PostgreSQL's, lowest first; 1-9 by precedence climbing):
--   1 OR   2 AND   3 NOT   4 IS ...   5 = <> < > <= >=   6 [NOT] IN / BETWEEN / LIKE / ILIKE
--   7 || and OPERATOR(pg_catalog.op)   8 + -   9 * / %   10 unary - +   11 :: COLLATE   12 primary
CREATE FUNCTION pgshadow._filter_expr(p_tbl regclass, p_k text[], p_v text[], p_pos integer[],
    INOUT i integer, p_level integer, p_depth integer, OUT sql text, OUT unk boolean, OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r      record;
    r2     record;
    r3     record;
    v_at   integer;
    v_not  boolean;
    v_op   text;
    v_name text;
    v_typ  oid;
    v_t    record;
    v_args text[];
    v_unks boolean[];
    v_cnst boolean;
    v_n    integer;
    v_ok   boolean;
    v_col  record;
    v_types oid[];
BEGIN
    IF p_depth > 200 THEN
        PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'expression nested too deeply');
    END IF;
    IF p_level <= 9 THEN
        -- binary operators by precedence climbing (one frame per operand, not
        -- per level): an operand, then every operator binding at least as
        -- tightly as p_level, each with a right operand one level tighter
        IF p_level <= 3 AND p_k[i] = 'id' AND p_v[i] = 'not' THEN
            v_at := p_pos[i];
            r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 1, 3, p_depth + 1);
            i := r.i;
            SELECT * INTO sql, unk, cnst FROM pgshadow._filter_logic(p_tbl, v_at, 'NOT', r.sql, r.unk, r.cnst, NULL, NULL, NULL);
        ELSE
            SELECT * INTO i, sql, unk, cnst FROM pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 10, p_depth + 1);
        END IF;
        LOOP
            v_at := p_pos[i];
            v_n := CASE
                WHEN p_k[i] = 'id' AND p_v[i] = 'or' THEN 1
                WHEN p_k[i] = 'id' AND p_v[i] = 'and' THEN 2
                WHEN p_k[i] = 'id' AND p_v[i] = 'is' THEN 4
                WHEN p_k[i] = 'op' AND p_v[i] IN ('=', '<>', '!=', '<', '>', '<=', '>=') THEN 5
                WHEN p_k[i] = 'id' AND (p_v[i] IN ('in', 'between', 'like', 'ilike')
                                        OR p_v[i] = 'not' AND p_k[i + 1] = 'id' AND p_v[i + 1] IN ('in', 'between', 'like', 'ilike')) THEN 6
                WHEN p_k[i] = 'op' AND p_v[i] = '||' THEN 7
                WHEN p_k[i] = 'id' AND p_v[i] = 'operator' AND p_k[i + 1] = 'p' AND p_v[i + 1] = '(' THEN 7
                WHEN p_k[i] = 'op' AND p_v[i] IN ('+', '-') THEN 8
                WHEN p_k[i] = 'op' AND p_v[i] IN ('*', '/', '%') THEN 9
                WHEN p_k[i] = 'op' THEN 0
                ELSE NULL END;
            IF v_n = 0 THEN
                PERFORM pgshadow._filter_error(p_tbl, v_at, format('operator %s is not allowed', p_v[i]));
            END IF;
            EXIT WHEN v_n IS NULL OR v_n < p_level;
            IF v_n IN (1, 2) THEN
                -- a chain of ORs (ANDs) is one node: (a OR b OR c)
                v_op := p_v[i];
                v_args := ARRAY[sql]; v_unks := ARRAY[unk]; v_cnst := cnst;
                WHILE p_k[i] = 'id' AND p_v[i] = v_op LOOP
                    r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 1, v_n + 1, p_depth + 1);
                    i := r2.i;
                    v_args := v_args || r2.sql; v_unks := v_unks || r2.unk; v_cnst := v_cnst AND r2.cnst;
                END LOOP;
                SELECT * INTO sql, unk, cnst FROM pgshadow._filter_chain(p_tbl, v_at, upper(v_op), v_args, v_unks, v_cnst);
            ELSIF v_n = 4 THEN
                i := i + 1;
                v_not := p_k[i] = 'id' AND p_v[i] = 'not';
                IF v_not THEN
                    i := i + 1;
                END IF;
                IF p_k[i] = 'id' AND p_v[i] IN ('null', 'true', 'false') THEN
                    SELECT * INTO sql, unk, cnst
                      FROM pgshadow._filter_is(p_tbl, v_at, CASE WHEN v_not THEN 'NOT ' ELSE '' END || upper(p_v[i]), sql, unk, cnst);
                    i := i + 1;
                ELSIF p_k[i] = 'id' AND p_v[i] = 'distinct' THEN
                    i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, i + 1, 'from');
                    r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 5, p_depth + 1);
                    i := r2.i;
                    -- a IS DISTINCT FROM b, spelled with OPERATOR(pg_catalog.=):
                    -- (a IS NULL AND b IS NOT NULL) OR (a IS NOT NULL AND b IS NULL) OR (a = b) IS FALSE
                    IF unk AND r2.unk THEN
                        sql := pgshadow._filter_coerce(p_tbl, v_at, sql, true, 'text'::regtype);
                        r2.sql := pgshadow._filter_coerce(p_tbl, v_at, r2.sql, true, 'text'::regtype);
                    ELSIF unk THEN
                        sql := pgshadow._filter_coerce(p_tbl, v_at, sql, true, pgshadow._filter_typeof(p_tbl, v_at, r2.sql));
                    ELSIF r2.unk THEN
                        r2.sql := pgshadow._filter_coerce(p_tbl, v_at, r2.sql, true, pgshadow._filter_typeof(p_tbl, v_at, sql));
                    END IF;
                    v_cnst := cnst AND r2.cnst;
                    -- each part built (and folded) as a reparse of the result would
                    r := pgshadow._filter_binop(p_tbl, v_at, '=', sql, false, cnst, r2.sql, false, r2.cnst);
                    r := pgshadow._filter_is(p_tbl, v_at, 'FALSE', r.sql, false, r.cnst);
                    r3 := pgshadow._filter_logic(p_tbl, v_at, 'AND',
                              (pgshadow._filter_is(p_tbl, v_at, 'NULL', sql, false, cnst)).sql, false, cnst,
                              (pgshadow._filter_is(p_tbl, v_at, 'NOT NULL', r2.sql, false, r2.cnst)).sql, false, r2.cnst);
                    v_t := pgshadow._filter_logic(p_tbl, v_at, 'AND',
                              (pgshadow._filter_is(p_tbl, v_at, 'NOT NULL', sql, false, cnst)).sql, false, cnst,
                              (pgshadow._filter_is(p_tbl, v_at, 'NULL', r2.sql, false, r2.cnst)).sql, false, r2.cnst);
                    SELECT * INTO sql, unk, cnst
                      FROM pgshadow._filter_chain(p_tbl, v_at, 'OR', ARRAY[r3.sql, v_t.sql, r.sql], '{f,f,f}',
                                                  r3.cnst AND v_t.cnst AND r.cnst);
                    IF v_not THEN
                        SELECT * INTO sql, unk, cnst FROM pgshadow._filter_logic(p_tbl, v_at, 'NOT', sql, false, cnst, NULL, NULL, NULL);
                    END IF;
                ELSE
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('expected NULL, TRUE, FALSE or DISTINCT FROM after IS, found %s',
                                                                            pgshadow._filter_tok(p_k[i], p_v[i])));
                END IF;
            ELSIF v_n = 5 THEN
                v_op := CASE p_v[i] WHEN '!=' THEN '<>' ELSE p_v[i] END;
                r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 1, 6, p_depth + 1);
                i := r2.i;
                SELECT * INTO sql, unk, cnst FROM pgshadow._filter_binop(p_tbl, v_at, v_op, sql, unk, cnst, r2.sql, r2.unk, r2.cnst);
                IF p_k[i] = 'op' AND p_v[i] IN ('=', '<>', '!=', '<', '>', '<=', '>=') THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'comparisons cannot be chained (use AND)');
                END IF;
            ELSIF v_n = 6 THEN
                v_not := p_v[i] = 'not';
                IF v_not THEN
                    i := i + 1;
                END IF;
                v_at := p_pos[i];
                IF p_v[i] = 'in' THEN
                    i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, i + 1, '(');
                    IF p_k[i] = 'id' AND p_v[i] IN ('select', 'values', 'with', 'table') THEN
                        PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'subqueries are not allowed');
                    END IF;
                    v_args := '{}'; v_unks := '{}'; v_cnst := cnst;
                    LOOP
                        r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 1, p_depth + 1);
                        i := r2.i;
                        v_args := v_args || r2.sql; v_unks := v_unks || r2.unk;
                        v_cnst := v_cnst AND r2.cnst;
                        EXIT WHEN p_k[i] = 'p' AND p_v[i] = ')';
                        i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, i, ',');
                    END LOOP;
                    i := i + 1;
                    -- the list's type: the tested value's, else the first typed item's, else text
                    IF NOT unk THEN
                        v_typ := pgshadow._filter_typeof(p_tbl, v_at, sql);
                    ELSE
                        v_typ := NULL;
                        FOR v_n IN 1 .. cardinality(v_args) LOOP
                            IF NOT v_unks[v_n] THEN
                                v_typ := pgshadow._filter_typeof(p_tbl, v_at, v_args[v_n]);
                                EXIT;
                            END IF;
                        END LOOP;
                        sql := pgshadow._filter_coerce(p_tbl, v_at, sql, true, coalesce(v_typ, 'text'::regtype));
                        unk := false;
                    END IF;
                    -- x IN (a, b) is ((x = a) OR (x = b)), each with OPERATOR(pg_catalog.=)
                    FOR v_n IN 1 .. cardinality(v_args) LOOP
                        r2 := pgshadow._filter_binop(p_tbl, v_at, '=', sql, false, false,
                                  pgshadow._filter_coerce(p_tbl, v_at, v_args[v_n], v_unks[v_n], coalesce(v_typ, 'text'::regtype)), false, false);
                        v_args[v_n] := r2.sql;
                    END LOOP;
                    IF cardinality(v_args) = 1 THEN
                        sql := v_args[1];
                    ELSE
                        sql := (pgshadow._filter_chain(p_tbl, v_at, 'OR', v_args, array_fill(false, ARRAY[cardinality(v_args)]), false)).sql;
                    END IF;
                    IF v_not THEN
                        sql := (pgshadow._filter_logic(p_tbl, v_at, 'NOT', sql, false, false, NULL, NULL, NULL)).sql;
                    END IF;
                    unk := false;
                    cnst := v_cnst;
                    IF cnst THEN
                        sql := pgshadow._filter_fold(p_tbl, v_at, sql);
                    END IF;
                ELSIF p_v[i] = 'between' THEN
                    IF p_k[i + 1] = 'id' AND p_v[i + 1] IN ('symmetric', 'asymmetric') THEN
                        PERFORM pgshadow._filter_error(p_tbl, p_pos[i + 1], 'BETWEEN SYMMETRIC is not supported');
                    END IF;
                    r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 1, 7, p_depth + 1);
                    i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, r2.i, 'and');
                    r3 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 7, p_depth + 1);
                    i := r3.i;
                    -- x BETWEEN a AND b is (x >= a) AND (x <= b); NOT BETWEEN is (x < a) OR (x > b)
                    r2 := pgshadow._filter_binop(p_tbl, v_at, CASE WHEN v_not THEN '<' ELSE '>=' END, sql, unk, cnst, r2.sql, r2.unk, r2.cnst);
                    r3 := pgshadow._filter_binop(p_tbl, v_at, CASE WHEN v_not THEN '>' ELSE '<=' END, sql, unk, cnst, r3.sql, r3.unk, r3.cnst);
                    SELECT * INTO sql, unk, cnst
                      FROM pgshadow._filter_chain(p_tbl, v_at, CASE WHEN v_not THEN 'OR' ELSE 'AND' END,
                                                  ARRAY[r2.sql, r3.sql], '{f,f}', r2.cnst AND r3.cnst);
                ELSE
                    v_op := CASE WHEN v_not THEN '!' ELSE '' END || CASE p_v[i] WHEN 'like' THEN '~~' ELSE '~~*' END;
                    r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 1, 7, p_depth + 1);
                    i := r2.i;
                    IF p_k[i] = 'id' AND p_v[i] = 'escape' THEN
                        PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'LIKE ... ESCAPE is not supported');
                    END IF;
                    IF unk THEN
                        sql := pgshadow._filter_coerce(p_tbl, v_at, sql, true, 'text'::regtype);
                        unk := false;
                    END IF;
                    SELECT * INTO sql, unk, cnst FROM pgshadow._filter_binop(p_tbl, v_at, v_op, sql, unk, cnst, r2.sql, r2.unk, r2.cnst);
                END IF;
            ELSE
                IF p_k[i] = 'op' THEN
                    v_op := p_v[i];
                    i := i + 1;
                ELSE
                    -- OPERATOR(pg_catalog.op): only pg_catalog, only the operators the grammar has
                    IF NOT (p_v[i + 2] = 'pg_catalog' AND p_k[i + 2] IN ('id', 'qid') AND p_v[i + 3] = '.' AND p_k[i + 3] = 'p'
                            AND p_k[i + 4] = 'op' AND p_k[i + 5] = 'p' AND p_v[i + 5] = ')') THEN
                        PERFORM pgshadow._filter_error(p_tbl, v_at, 'OPERATOR() must name an operator of schema pg_catalog');
                    END IF;
                    v_op := p_v[i + 4];
                    IF v_op NOT IN ('=', '<>', '<', '>', '<=', '>=', '+', '-', '*', '/', '%', '||', '~~', '~~*', '!~~', '!~~*') THEN
                        PERFORM pgshadow._filter_error(p_tbl, p_pos[i + 4], format('operator %s is not allowed', v_op));
                    END IF;
                    i := i + 6;
                END IF;
                r2 := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, v_n + 1, p_depth + 1);
                i := r2.i;
                SELECT * INTO sql, unk, cnst FROM pgshadow._filter_binop(p_tbl, v_at, v_op, sql, unk, cnst, r2.sql, r2.unk, r2.cnst);
            END IF;
        END LOOP;
    ELSIF p_level = 10 THEN
        v_at := p_pos[i];
        IF p_k[i] = 'op' AND p_v[i] IN ('-', '+') THEN
            v_op := p_v[i];
            i := i + 1;
        ELSIF p_k[i] = 'id' AND p_v[i] = 'operator' AND p_k[i + 1] = 'p' AND p_v[i + 1] = '(' THEN
            IF NOT (p_v[i + 2] = 'pg_catalog' AND p_k[i + 2] IN ('id', 'qid') AND p_v[i + 3] = '.' AND p_k[i + 3] = 'p'
                    AND p_k[i + 4] = 'op' AND p_v[i + 4] IN ('-', '+') AND p_k[i + 5] = 'p' AND p_v[i + 5] = ')') THEN
                PERFORM pgshadow._filter_error(p_tbl, v_at, 'a prefix OPERATOR() must be pg_catalog.- or pg_catalog.+');
            END IF;
            v_op := p_v[i + 4];
            i := i + 6;
        END IF;
        IF v_op IS NULL THEN
            SELECT * INTO i, sql, unk, cnst FROM pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 11, p_depth);
        ELSE
            r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 10, p_depth + 1);
            i := r.i;
            SELECT * INTO sql, unk, cnst
              FROM pgshadow._filter_node(p_tbl, v_at,
                       format('(OPERATOR(pg_catalog.%s) %s)', v_op, pgshadow._filter_coerce(p_tbl, v_at, r.sql, r.unk, 'text'::regtype)),
                       r.cnst);
        END IF;
    ELSIF p_level = 11 THEN
        r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 12, p_depth);
        i := r.i; sql := r.sql; unk := r.unk; cnst := r.cnst;
        LOOP
            v_at := p_pos[i];
            IF p_k[i] = 'p' AND p_v[i] = '::' THEN
                v_t := pgshadow._filter_typname(p_tbl, p_k, p_v, p_pos, i + 1);
                i := v_t.i;
                SELECT * INTO sql, unk, cnst FROM pgshadow._filter_cast(p_tbl, v_at, sql, unk, cnst, v_t.typ, v_t.txt);
            ELSIF p_k[i] = 'id' AND p_v[i] = 'collate' THEN
                -- a collation of pg_catalog that came with the server; it runs no code of a role
                i := i + 1;
                IF p_k[i] IN ('id', 'qid') AND p_v[i] = 'pg_catalog' AND p_k[i + 1] = 'p' AND p_v[i + 1] = '.' THEN
                    i := i + 2;
                END IF;
                IF p_k[i] NOT IN ('id', 'qid') THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'expected a collation name after COLLATE');
                END IF;
                IF p_k[i + 1] = 'p' AND p_v[i + 1] = '.' THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'only collations of schema pg_catalog are allowed');
                END IF;
                IF NOT EXISTS (SELECT FROM pg_collation WHERE collname = p_v[i] AND collnamespace = 'pg_catalog'::regnamespace
                                  AND oid < 16384 AND collencoding IN (-1, pg_char_to_encoding(getdatabaseencoding()))) THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('collation %s is not a built-in collation', quote_ident(p_v[i])));
                END IF;
                -- not folded: a constant would lose its collation
                SELECT n.sql, n.unk INTO sql, unk
                  FROM pgshadow._filter_node(p_tbl, v_at,
                           format('(%s COLLATE pg_catalog.%I)', pgshadow._filter_coerce(p_tbl, v_at, sql, unk, 'text'::regtype), p_v[i]),
                           false) n;
                cnst := false;
                i := i + 1;
            ELSE
                EXIT;
            END IF;
        END LOOP;
    ELSE
        -- primary
        v_at := p_pos[i];
        cnst := true;
        unk := false;
        IF p_k[i] = 'num' THEN
            sql := format('CAST(%L AS %s)', p_v[i]::numeric::text,
                          CASE WHEN p_v[i] ~ '[.eE]' THEN 'numeric'
                               WHEN p_v[i]::numeric BETWEEN -2147483648 AND 2147483647 THEN 'integer'
                               WHEN p_v[i]::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN 'bigint'
                               ELSE 'numeric' END);
            i := i + 1;
        ELSIF p_k[i] = 'str' THEN
            sql := quote_literal(p_v[i]);
            unk := true;
            i := i + 1;
        ELSIF p_k[i] = 'p' AND p_v[i] = '(' THEN
            IF p_k[i + 1] = 'id' AND p_v[i + 1] IN ('select', 'values', 'with', 'table') THEN
                PERFORM pgshadow._filter_error(p_tbl, p_pos[i + 1], 'subqueries are not allowed');
            END IF;
            r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 1, 1, p_depth + 1);
            i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, r.i, ')');
            sql := r.sql; unk := r.unk; cnst := r.cnst;
        ELSIF p_k[i] = 'id' AND p_v[i] IN ('true', 'false') THEN
            sql := p_v[i];
            i := i + 1;
        ELSIF p_k[i] = 'id' AND p_v[i] = 'null' THEN
            sql := 'NULL';
            unk := true;
            i := i + 1;
        ELSIF p_k[i] = 'id' AND p_v[i] = 'cast' AND p_k[i + 1] = 'p' AND p_v[i + 1] = '(' THEN
            r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i + 2, 1, p_depth + 1);
            i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, r.i, 'as');
            v_t := pgshadow._filter_typname(p_tbl, p_k, p_v, p_pos, i);
            i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, v_t.i, ')');
            SELECT * INTO sql, unk, cnst FROM pgshadow._filter_cast(p_tbl, v_at, r.sql, r.unk, r.cnst, v_t.typ, v_t.txt);
        ELSIF p_k[i] = 'id' AND p_v[i] IN ('select', 'exists', 'values', 'with', 'table') THEN
            PERFORM pgshadow._filter_error(p_tbl, v_at, 'subqueries are not allowed');
        ELSIF p_k[i] = 'id' AND p_v[i] IN ('current_date', 'current_time', 'current_timestamp', 'localtime', 'localtimestamp',
                                           'current_user', 'current_role', 'session_user', 'user', 'system_user',
                                           'current_catalog', 'current_schema') THEN
            PERFORM pgshadow._filter_error(p_tbl, v_at, format('%s is not allowed: it is not immutable', upper(p_v[i])));
        ELSIF p_k[i] = 'id' AND p_v[i] IN ('all', 'analyse', 'analyze', 'and', 'any', 'array', 'as', 'asc', 'asymmetric',
                'both', 'case', 'check', 'collate', 'column', 'constraint', 'create', 'default', 'deferrable', 'desc',
                'distinct', 'do', 'else', 'end', 'except', 'fetch', 'for', 'foreign', 'from', 'grant', 'group', 'having',
                'in', 'initially', 'intersect', 'into', 'lateral', 'leading', 'limit', 'not', 'offset', 'on', 'only', 'or',
                'order', 'placing', 'primary', 'references', 'returning', 'row', 'some', 'symmetric', 'then', 'to',
                'trailing', 'union', 'unique', 'using', 'variadic', 'when', 'where', 'window', 'is', 'between', 'like',
                'ilike', 'similar', 'isnull', 'notnull', 'operator', 'escape', 'over', 'filter', 'within', 'interval') THEN
            PERFORM pgshadow._filter_error(p_tbl, v_at, format('unexpected %s', upper(p_v[i])));
        ELSIF p_k[i] IN ('id', 'qid') THEN
            v_name := p_v[i];
            IF p_k[i + 1] = 'p' AND p_v[i + 1] = '.' AND p_k[i + 2] IN ('id', 'qid') AND p_k[i + 3] = 'p' AND p_v[i + 3] = '(' THEN
                IF v_name <> 'pg_catalog' THEN
                    PERFORM pgshadow._filter_error(p_tbl, v_at, format('function %s.%s is not a built-in function (only pg_catalog functions are allowed)',
                                                                        quote_ident(v_name), quote_ident(p_v[i + 2])));
                END IF;
                i := i + 2;
                v_name := p_v[i];
            END IF;
            IF p_k[i + 1] = 'p' AND p_v[i + 1] = '(' THEN
                -- a function call, of pg_catalog only, so resolution is among built-in
                -- functions (checked below, once the argument types are known)
                v_at := p_pos[i];
                IF v_name = 'coalesce' AND p_k[i] = 'id' THEN
                    v_op := 'COALESCE';
                ELSE
                    IF NOT EXISTS (SELECT FROM pg_proc p WHERE p.proname = v_name AND p.pronamespace = 'pg_catalog'::regnamespace) THEN
                        PERFORM pgshadow._filter_error(p_tbl, v_at, format('function %s is not a built-in function (only pg_catalog functions are allowed)',
                                                                            quote_ident(v_name)));
                    END IF;
                    v_op := 'pg_catalog.' || quote_ident(v_name);
                END IF;
                i := i + 2;
                v_args := '{}'; v_unks := '{}'; v_cnst := true;
                IF NOT (p_k[i] = 'p' AND p_v[i] = ')') THEN
                    LOOP
                        IF p_k[i] = 'id' AND p_v[i] IN ('distinct', 'all', 'variadic') OR p_k[i] = 'op' AND p_v[i] = '*' THEN
                            PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('unexpected %s in a function call', upper(p_v[i])));
                        END IF;
                        r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 1, p_depth + 1);
                        i := r.i;
                        v_args := v_args || r.sql; v_unks := v_unks || r.unk;
                        v_cnst := v_cnst AND r.cnst;
                        EXIT WHEN p_k[i] = 'p' AND p_v[i] = ')';
                        i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, i, ',');
                    END LOOP;
                END IF;
                i := i + 1;
                -- untyped literals: the type of COALESCE's first typed argument, else text
                v_typ := NULL;
                IF v_op = 'COALESCE' THEN
                    FOR v_n IN 1 .. cardinality(v_args) LOOP
                        IF NOT v_unks[v_n] THEN
                            v_typ := pgshadow._filter_typeof(p_tbl, v_at, v_args[v_n]);
                            EXIT;
                        END IF;
                    END LOOP;
                END IF;
                FOR v_n IN 1 .. cardinality(v_args) LOOP
                    v_args[v_n] := pgshadow._filter_coerce(p_tbl, v_at, v_args[v_n], v_unks[v_n], coalesce(v_typ, 'text'::regtype));
                END LOOP;
                IF v_op = 'COALESCE' AND cardinality(v_args) = 0 THEN
                    PERFORM pgshadow._filter_error(p_tbl, v_at, 'COALESCE needs arguments');
                END IF;
                IF v_op <> 'COALESCE' THEN
                    -- The function that runs must be a plain, immutable, built-in one.
                    -- An exact match of the argument types is the one resolution
                    -- picks; without one, every function of the name must qualify.
                    SELECT array_agg(pgshadow._filter_typeof(p_tbl, v_at, a) ORDER BY n) INTO v_types
                      FROM unnest(v_args) WITH ORDINALITY u(a, n);
                    SELECT count(*), coalesce(bool_and(p.prokind = 'f' AND p.provolatile = 'i' AND p.oid < 16384 AND NOT p.proretset), false)
                      INTO v_n, v_ok
                      FROM pg_proc p WHERE p.proname = v_name AND p.pronamespace = 'pg_catalog'::regnamespace
                       AND p.pronargs = coalesce(cardinality(v_types), 0)
                       AND p.proargtypes::text = coalesce(array_to_string(v_types, ' '), '');
                    IF v_n = 0 THEN
                        SELECT coalesce(bool_and(p.prokind = 'f' AND p.provolatile = 'i' AND p.oid < 16384 AND NOT p.proretset), false)
                          INTO v_ok
                          FROM pg_proc p WHERE p.proname = v_name AND p.pronamespace = 'pg_catalog'::regnamespace;
                    END IF;
                    IF NOT v_ok THEN
                        PERFORM pgshadow._filter_error(p_tbl, v_at, format('function %s is not allowed: only immutable built-in functions (no aggregates, '
                                                                            'window or set-returning functions) may be used', quote_ident(v_name)));
                    END IF;
                END IF;
                SELECT * INTO sql, unk, cnst
                  FROM pgshadow._filter_node(p_tbl, v_at, format('%s(%s)', v_op, array_to_string(v_args, ', ')), v_cnst);
            ELSE
                -- a column: col, t.col or table.col
                IF p_k[i + 1] = 'p' AND p_v[i + 1] = '.' THEN
                    IF NOT (p_k[i + 2] IN ('id', 'qid'))
                       OR v_name NOT IN ('t', (SELECT relname FROM pg_class WHERE oid = p_tbl)) THEN
                        PERFORM pgshadow._filter_error(p_tbl, v_at, format('%s is not the table (write col, t.col or %s.col)',
                                                                            quote_ident(v_name), quote_ident((SELECT relname FROM pg_class WHERE oid = p_tbl))));
                    END IF;
                    i := i + 2;
                    v_name := p_v[i];
                    v_at := p_pos[i];
                    IF p_k[i + 1] = 'p' AND p_v[i + 1] = '.' THEN
                        PERFORM pgshadow._filter_error(p_tbl, p_pos[i + 1], 'composite fields are not allowed');
                    END IF;
                END IF;
                SELECT a.attnum, a.atttypid INTO v_col FROM pg_attribute a
                 WHERE a.attrelid = p_tbl AND a.attname = v_name AND NOT a.attisdropped;
                IF NOT FOUND THEN
                    PERFORM pgshadow._filter_error(p_tbl, v_at, format('column %s does not exist', quote_ident(v_name)));
                ELSIF v_col.attnum < 0 THEN
                    PERFORM pgshadow._filter_error(p_tbl, v_at, format('system column %s is not allowed', quote_ident(v_name)));
                END IF;
                PERFORM pgshadow._filter_check_type(p_tbl, v_at, v_col.atttypid, format('column %s', quote_ident(v_name)), false);
                sql := 't.' || quote_ident(v_name);
                cnst := false;
                i := i + 1;
                IF p_k[i] = 'p' AND p_v[i] = '[' THEN
                    PERFORM pgshadow._filter_error(p_tbl, p_pos[i], 'array subscripts are not supported');
                END IF;
            END IF;
        ELSE
            PERFORM pgshadow._filter_error(p_tbl, v_at, format('unexpected %s', pgshadow._filter_tok(p_k[i], p_v[i])));
        END IF;
    END IF;
END
$$;

-- The canonical form of a row filter for table p_tbl, or an error naming the
-- table, what was refused and where. Idempotent on its own output, so it also
-- re-validates a stored filter. Constants are read and written under fixed
-- settings, so the stored text means the same in every session.
CREATE FUNCTION pgshadow._filter(p_tbl regclass, p_filter text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $$
DECLARE
    v_tok record;
    r     record;
    v     text;
BEGIN
    IF p_filter IS NULL THEN
        RETURN NULL;
    END IF;
    -- room for the canonical text of a long filter, which must parse again
    IF length(p_filter) > 100000 THEN
        PERFORM pgshadow._filter_error(p_tbl, 100001, 'a row filter is limited to 100000 characters');
    END IF;
    v_tok := pgshadow._filter_tokens(p_tbl, p_filter);
    IF v_tok.k[1] = 'end' THEN
        PERFORM pgshadow._filter_error(p_tbl, 1, 'the filter is empty');
    END IF;
    r := pgshadow._filter_expr(p_tbl, v_tok.k, v_tok.v, v_tok.pos, 1, 1, 0);
    IF v_tok.k[r.i] <> 'end' THEN
        PERFORM pgshadow._filter_error(p_tbl, v_tok.pos[r.i],
            format('unexpected %s', pgshadow._filter_tok(v_tok.k[r.i], v_tok.v[r.i])));
    END IF;
    v := '(' || pgshadow._filter_coerce(p_tbl, 1, r.sql, r.unk, 'boolean'::regtype) || ')';
    -- Running the canonical text cannot run a role's code: it holds only
    -- columns of built-in types, typed constants, and operators and
    -- functions of pg_catalog that are built in, so the planner's checks (and
    -- constant folding) here run nothing but the server's own code.
    BEGIN
        EXECUTE format('SELECT FROM %s t WHERE %s LIMIT 0', p_tbl, v);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pgshadow._filter_error(p_tbl, 1, SQLERRM);
    END;
    RETURN v;
END
$$;

-- The filter text every read of p_tbl pastes ('true' for none). What is
-- stored is canonical, but the table may have changed since: a column the
-- filter reads whose type became a user-defined one would let
-- OPERATOR(pg_catalog.op) reach that type owner's casts. So the columns the
-- canonical text names (always as t.<identifier>) are checked here, cheaply,
-- each time the filter is pasted.
CREATE FUNCTION pgshadow._filter_sql(p_tbl regclass, p_filter text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    IF p_filter IS NULL THEN
        RETURN 'true';
    END IF;
    SELECT a.attname, a.atttypid INTO v
      FROM regexp_matches(p_filter, '\mt\.("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)', 'g') m
      JOIN pg_attribute a ON a.attrelid = p_tbl AND a.attname = (parse_ident(m[1]))[1] AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type y ON y.oid = a.atttypid
     WHERE a.atttypid >= 16384 OR y.typtype NOT IN ('b', 'r', 'm') OR y.typnamespace <> 'pg_catalog'::regnamespace
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgshadow: row_filter of % reads column %, whose type % is not a built-in type', p_tbl,
            quote_ident(v.attname), format_type(v.atttypid, NULL)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The column''s type changed after subscribing: shadow_unsubscribe() and subscribe again.';
    END IF;
    RETURN p_filter;
END
$$;
