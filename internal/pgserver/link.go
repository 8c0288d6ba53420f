package pgserver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ForeignServerSQL is the statement that declares database db on s as
// foreign server srv (postgres_fdw) in another database: how the tests, the
// demo and the benchmarks reach a push target.
func (s *Server) ForeignServerSQL(srv, db string) string {
	return fmt.Sprintf("CREATE SERVER %s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %s, port %s, dbname %s)",
		pgx.Identifier{srv}.Sanitize(), literal(s.Host), literal(strconv.Itoa(s.Port)), literal(db))
}

// UserMappingSQL is the statement that lets the current user of another
// database log in on s, through foreign server srv, as s's superuser.
func (s *Server) UserMappingSQL(srv string) string {
	return fmt.Sprintf("CREATE USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (user %s, password %s)",
		pgx.Identifier{srv}.Sanitize(), literal(s.User), literal(s.Password))
}

// literal quotes s as an SQL string constant (standard_conforming_strings is
// on in every supported PostgreSQL, so only quotes are doubled).
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
