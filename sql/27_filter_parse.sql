-- Row filters, continued: the parser. It builds a filter's canonical SQL
-- from the tokens of sql/25_filter_lex.sql with the nodes of
-- sql/26_filter_types.sql.
-- Length: the parser is one function (_filter_expr says why).

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

-- The items of a parenthesised list, from token i to its ')': returns i
-- after the ')', each item's SQL, whether it is untyped, and whether all are
-- constant. p_call: a function call's arguments, where DISTINCT, ALL,
-- VARIADIC and * are refused.
CREATE FUNCTION pgshadow._filter_list(p_tbl regclass, p_k text[], p_v text[], p_pos integer[],
    INOUT i integer, p_depth integer, p_call boolean, OUT sqls text[], OUT unks boolean[], OUT cnsts boolean[], OUT cnst boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    sqls := '{}'; unks := '{}'; cnsts := '{}'; cnst := true;
    LOOP
        IF p_call AND (p_k[i] = 'id' AND p_v[i] IN ('distinct', 'all', 'variadic') OR p_k[i] = 'op' AND p_v[i] = '*') THEN
            PERFORM pgshadow._filter_error(p_tbl, p_pos[i], format('unexpected %s in a function call', upper(p_v[i])));
        END IF;
        r := pgshadow._filter_expr(p_tbl, p_k, p_v, p_pos, i, 1, p_depth + 1);
        i := r.i;
        sqls := sqls || r.sql; unks := unks || r.unk; cnsts := cnsts || r.cnst;
        cnst := cnst AND r.cnst;
        EXIT WHEN p_k[i] = 'p' AND p_v[i] = ')';
        i := pgshadow._filter_expect(p_tbl, p_k, p_v, p_pos, i, ',');
    END LOOP;
    i := i + 1;
END
$$;

-- The recursive-descent parser. p_level is the precedence level being
-- parsed (PostgreSQL's, lowest first; 1-9 by precedence climbing):
--   1 OR   2 AND   3 NOT   4 IS ...   5 = <> < > <= >=   6 [NOT] IN / BETWEEN / LIKE / ILIKE
--   7 || and OPERATOR(pg_catalog.op)   8 + -   9 * / %   10 unary - +   11 :: COLLATE   12 primary
-- Length: the whole grammar in one function. The levels share the token
-- arrays, the position and the error reporting, and precedence climbing
-- parses the nine binary levels in one branch; a function per level would
-- add a call per operand per level.
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
                    r2 := pgshadow._filter_list(p_tbl, p_k, p_v, p_pos, i, p_depth, false);
                    i := r2.i; v_args := r2.sqls; v_unks := r2.unks; v_cnst := cnst AND r2.cnst;
                    -- the list's type: the tested value's, else the first typed item's, else text
                    IF NOT unk THEN
                        v_typ := pgshadow._filter_typeof(p_tbl, v_at, sql);
                    ELSE
                        v_typ := pgshadow._filter_list_type(p_tbl, v_at, v_args, v_unks);
                        sql := pgshadow._filter_coerce(p_tbl, v_at, sql, true, coalesce(v_typ, 'text'::regtype));
                        unk := false;
                    END IF;
                    -- x IN (a, b) is ((x = a) OR (x = b)), each with OPERATOR(pg_catalog.=)
                    FOR v_n IN 1 .. cardinality(v_args) LOOP
                        -- constness as the comparison written out would have it, so
                        -- the canonical text parses to itself (constants fold)
                        r3 := pgshadow._filter_binop(p_tbl, v_at, '=', sql, false, cnst,
                                  pgshadow._filter_coerce(p_tbl, v_at, v_args[v_n], v_unks[v_n], coalesce(v_typ, 'text'::regtype)), false, r2.cnsts[v_n]);
                        v_args[v_n] := r3.sql;
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
                IF p_k[i] = 'p' AND p_v[i] = ')' THEN
                    v_args := '{}'; v_unks := '{}'; v_cnst := true;
                    i := i + 1;
                ELSE
                    r := pgshadow._filter_list(p_tbl, p_k, p_v, p_pos, i, p_depth, true);
                    i := r.i; v_args := r.sqls; v_unks := r.unks; v_cnst := r.cnst;
                END IF;
                -- untyped literals: the type of COALESCE's first typed argument, else text
                v_typ := NULL;
                IF v_op = 'COALESCE' THEN
                    v_typ := pgshadow._filter_list_type(p_tbl, v_at, v_args, v_unks);
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
