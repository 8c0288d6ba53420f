-- Removes what the migrations installed (the extension path uses DROP EXTENSION).
-- Capture triggers on user tables depend on the capture functions in schema
-- pgshadow; CASCADE drops them.
DROP EVENT TRIGGER IF EXISTS pgshadow_drop_watch;
DROP EVENT TRIGGER IF EXISTS pgshadow_key_watch;
DROP EVENT TRIGGER IF EXISTS pgshadow_partition_watch;
DROP VIEW IF EXISTS shadow_status, shadow_errors, shadow_conflicts;
DROP PROCEDURE IF EXISTS shadow_run(text, integer), shadow_retry(text);
DROP FUNCTION IF EXISTS shadow_track(regclass), shadow_untrack(regclass),
    shadow_add_target(text, text), shadow_learn_peer(text),
    shadow_subscribe(text, regclass, text, text[], text, boolean, text, text),
    shadow_unsubscribe(text, regclass), shadow_export(text, integer),
    shadow_skip(text, regclass, text), shadow_compare(text, regclass, integer, boolean),
    shadow_resync(text, regclass);
DROP SCHEMA IF EXISTS pgshadow CASCADE;
