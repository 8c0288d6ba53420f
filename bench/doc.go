// Command bench measures pgshadow against what users would pick instead
// (untracked tables, a raw COPY pipe, native logical replication, mimeo) on
// throwaway local servers, and writes the figures to BENCHMARKS.md.
//
//	go run ./bench [-quick] [-out BENCHMARKS.md] [-only 1,3]
//
// Every figure is a median of at least three repetitions, with pgshadow and
// its baseline interleaved (the order rotates each repetition) so that drift
// of the machine hits both. The servers run from $PGSHADOW_BINDIR, the private
// installation with this checkout's extension that `make bench` prepares
// (tests/pgroot), as `make test` does.
package main
