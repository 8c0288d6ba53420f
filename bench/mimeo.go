// mimeo (Debian's postgresql-15-mimeo), the closest peer: per-table DML
// replication with a row trigger and a queue table on the source, pulled by
// the destination over dblink. Set up as its howto describes: the extension
// in schema mimeo on the destination, a schema of the same name on the
// source, one dblink_mapping_mimeo row, dml_maker per table.

package main

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// mimeoSetup prepares mimeo between the source and target benchmark
// databases. A failure is remembered, not fatal: figure 5 then says why it
// is blocked and every other figure still runs.
func (b *bench) mimeoSetup(src, dst *pgx.Conn) {
	var avail int64
	avail, b.mimeoErr = b.queryInt(dst, "SELECT count(*) FROM pg_available_extensions WHERE name = 'mimeo'")
	if b.mimeoErr == nil && avail == 0 {
		b.mimeoErr = fmt.Errorf("the mimeo extension is not installed on this machine (apt-get install postgresql-15-mimeo)")
	}
	if b.mimeoErr != nil {
		return
	}
	b.mimeoErr = b.exec(dst, fmt.Sprintf(`CREATE EXTENSION IF NOT EXISTS dblink;
CREATE SCHEMA mimeo;
CREATE EXTENSION mimeo SCHEMA mimeo;
INSERT INTO mimeo.dblink_mapping_mimeo (data_source, username, pwd) VALUES (%s, %s, %s)`,
		lit(fmt.Sprintf("host=%s port=%d dbname=%s", b.src.Host, b.src.Port, benchDB)), lit(b.src.User), lit(b.src.Password)))
	if b.mimeoErr == nil {
		b.mimeoErr = b.exec(src, "CREATE SCHEMA IF NOT EXISTS mimeo")
	}
	if b.mimeoErr != nil {
		b.mimeoErr = fmt.Errorf("mimeo setup failed: %w", b.mimeoErr)
		b.logf("%v", b.mimeoErr)
	}
}

// mimeoTrack puts mimeo's DML replication on public.table: its trigger and
// queue table on the source, its config on the destination. The destination
// table is created by mimeo (empty) unless it exists already.
func (b *bench) mimeoTrack(dst *pgx.Conn, table string) error {
	if b.mimeoErr != nil {
		return b.mimeoErr
	}
	err := b.exec(dst, fmt.Sprintf("SELECT mimeo.dml_maker(%s, 1, p_dest_table := %[1]s, p_pulldata := false)", lit("public."+table)))
	if err != nil {
		return fmt.Errorf("mimeo dml_maker for %s: %w", table, err)
	}
	return nil
}

// mimeoQueue is the queue table mimeo's trigger fills on the source.
func mimeoQueue(table string) string { return "mimeo.public_" + table + "_q" }

// mimeoRefresh pulls the pending changes of table into the destination.
func (b *bench) mimeoRefresh(dst *pgx.Conn, table string) (float64, error) {
	return b.timed(dst, fmt.Sprintf("SELECT mimeo.refresh_dml(%s)", lit("public."+table)))
}
