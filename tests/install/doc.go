// Package install holds the catalog inventories that the install tests (and
// the capture tests' uninstall checks) compare: what pgshadow put into a
// database, rendered as sorted text lines so two installs can be diffed, and
// what of it is left after an uninstall.
package install
