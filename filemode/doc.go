// Package filemode moves pgshadow batches through files, for targets no
// connection reaches: Export reads the pending batch of every table of a file
// target (shadow_add_target(name, NULL)) over an ordinary client connection
// and writes it as a batch directory; Import applies one batch directory to a
// target database in one transaction. Neither needs file rights on a server,
// nor pgshadow on the target. Ship does both at once where one client reaches
// both databases: the batch streams from the source into the target with no
// files, applied and recorded as Import would (see ship.go).
//
// # Batch directories
//
// Each export run writes DIR/<target>/<xmax>-b<first batch>, e.g.
// 00000000000000000741-b000002: the xmax of the run's snapshot, zero-padded,
// so names sort in the order the runs happened and contain no clock; then the
// lowest batch number in the run. It holds manifest.json and per table
// <sub_id>.columns (shipped columns: name, type, key position), <sub_id>.keys
// (the changed keys; absent for a full copy) and <sub_id>.rows (their current
// rows), the last two in COPY text format written under fixed settings
// (DateStyle ISO, TimeZone UTC, extra_float_digits 3, bytea hex, ...), so they
// load as the same values into any server. The files are written into a
// hidden temporary directory, fsynced, and renamed into place; only then do
// the watermarks move (pgshadow.file_done) and the transaction commit.
//
// A table with nothing pending gets no files and keeps its watermark and
// batch number; a run where no table has anything pending writes no
// directory. A full copy (the first batch of a subscription with an initial
// copy, or a batch holding a TRUNCATE) is always written, even when empty.
//
// If an export fails after renaming its directory into place but before its
// commit, the directory stays, unacknowledged; the next export writes the
// same batch numbers again from the same starting snapshot, covering
// everything the failed one did and more. Import accepts that re-export after
// the failed one (see below), so applying every directory in name order is
// always right.
//
// # Import rules
//
// The target records, per source (system identifier and database name) and
// destination table, the last batch applied, in pgshadow_import.batches
// (created on first use). Before anything is applied, every file's size and
// SHA-256 are checked against the manifest; a missing or different file
// refuses the whole batch. Then, per table, batch n is:
//
//   - applied if it is last+1 and starts at the snapshot the applied batch
//     ended at (or is a full copy);
//   - a no-op ("already applied") if it is the very batch applied last, or
//     an older batch of the same subscription (the chain passed it, so the
//     target holds everything it carries);
//   - applied if it is a re-export of the last batch (same number and start,
//     later end), since it supersedes it; refused if it is older;
//   - refused otherwise (out of order), naming the table and the numbers.
//
// With nothing applied yet for a table, a full copy or batch 1 is accepted.
// Batch 1 is incremental only when the source subscribed with initial_copy
// => false: the target is then trusted to hold the rows as they were at
// subscription time, exactly as in push mode; if it does not, rows never
// changed since are missing and nothing can tell. Subscribe anew with the
// initial copy to repair: a full copy under a newer subscription replaces
// the table whatever was applied before, while any batch of an older
// subscription, and an incremental batch of another one, is refused.
//
// # Inbox
//
// ImportInbox applies every batch directory of one directory: each round
// reads the ledger and imports the first directory, in name order, that
// continues the chain (the manifests decide, so renamed directories still
// apply in order), skipping those applied already. When none continues it,
// the run stops naming the missing batch; nothing that follows it is
// applied. Pruning removes a directory only when the ledger shows every
// table of it applied (its batch or a later one of its subscription).
//
// Import runs with pgshadow.origin set to the source's node name, so a target
// that tracks the table itself does not capture the imported writes again.
// Extra target columns take their defaults; key columns for the delete use
// the destination's own types and collations.
package filemode
