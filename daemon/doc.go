// Package daemon is the loop behind `pgshadow run`: it ships the async
// subscriptions of one database soon after their changes commit. It LISTENs
// on channel "pgshadow" (capture sends a NOTIFY there, delivered at commit,
// for every table with an async subscription) and calls shadow_run()
// whenever a notification arrives, when the earliest queued retry in
// pgshadow.error falls due, and at least every Interval. The SQL side does
// the work and keeps the guarantees (order, error queue, backoff); the
// daemon only decides when to call it, reconnects when the connection
// drops, and logs what each run did.
//
// Without a daemon, pg_cron gives the same shipping at a coarser grain
// (pg_cron's finest schedule is seconds, and a cron job cannot wait on a
// NOTIFY):
//
//	SELECT cron.schedule('pgshadow-async', '5 seconds', 'CALL shadow_run()');
//
// The job must run in the database that holds the subscriptions
// (cron.schedule_in_database), as a role owning the tables, with a user
// mapping for each target's foreign server.
package daemon
