-- The session change log: one row per change that must end access tokens
-- (role change, deactivation, logout, refresh-family revocation), written in
-- the transaction of the change. Every instance reads the recent rows a few
-- times a second and drops those users from its in-memory access cache, so a
-- change made on one instance ends the affected tokens on all of them within
-- a second. Rows are purged after a retention far longer than that window.
-- SQLite twin of migrations/postgres/0011.
create table session_changes (
    id             blob primary key,
    -- whose access changed
    user_id        blob not null,
    -- wall-clock milliseconds since the epoch on the writing instance
    changed_at_ms  integer not null
);
create index session_changes_time on session_changes (changed_at_ms);
