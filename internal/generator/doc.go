// Package generator assembles pgshadow's SQL sources into what gets installed:
//
//   - pgshadow--X.Y.Z.sql, the extension script for the version in
//     pgshadow.control: every sql/*.sql but uninstall.sql, in file-name order;
//   - pgshadow--A--B.sql, a copy of each hand-written sql/updates upgrade;
//   - migrations/NNNNNN_pgshadow_X_Y_Z.{up,down}.sql, the same install and
//     upgrades as plain SQL for golang-migrate, where extension files cannot be
//     installed on the server.
//
// Output is deterministic and written only when it changed; make runs it
// before every install, test and build. The files of released versions are
// committed (release artifacts, read back as they are); the current
// version's are not.
package generator
