// Command pgshadow builds the pgshadow extension and runs the jobs SQL cannot
// do well. Each subcommand lives in the file of its topic (link.go: ship and
// compare, which share their flags and sessions; build.go: generate and
// migrate); the commands table in main.go lists them all.
package main
