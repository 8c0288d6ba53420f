// Command pgshadow builds the pgshadow extension and runs the jobs SQL cannot
// do well. Each subcommand lives in its own file and registers itself with register (main.go).
package main
