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
-- Length: one loop over the characters, a branch per token kind, as a
-- lexer is written; each branch is short.
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
    kind text;
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
            kind := 'op';
        ELSIF c IN ('(', ')', ',', '.', '[', ']') OR substr(p_src, i, 2) = '::' THEN
            s := CASE WHEN c = ':' THEN '::' ELSE c END;
            kind := 'p';
        ELSE
            PERFORM pgshadow._filter_error(p_tbl, i,
                CASE c WHEN ';' THEN 'semicolons are not allowed'
                       WHEN '$' THEN 'dollar quotes and parameters are not allowed'
                       ELSE format('unexpected character %s', quote_literal(c)) END);
        END IF;
        -- an operator or punctuation
        k := k || kind;
        v := v || s;
        pos := pos || i;
        i := i + length(s);
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
