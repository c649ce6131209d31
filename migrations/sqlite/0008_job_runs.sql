-- One row per run of a scheduled job for one business date: the record
-- `POST /admin/jobs/{name}/run` returns, and the key that makes each run
-- happen once per date however many instances are deployed.
--
-- A run inserts its row (`on conflict (job, as_of)`) before doing anything,
-- holding a PostgreSQL advisory lock on (job, as_of) for the whole run; on
-- SQLite the row's lease is the lock. A finished row is never run again.
-- SQLite twin of migrations/postgres/0008.
create table job_runs (
    -- `payment-reminders` or `overdue`
    job           text not null,
    -- the business date the run judged (due dates, lateness) on
    as_of         text not null,
    -- instance that runs or ran it (host name and process id), for operators
    owner         text not null,
    started_at    text not null,
    -- an unfinished run past this is presumed dead (its instance crashed) and
    -- may be taken over; renewed after every batch while the run is alive
    lease_until   text not null,
    -- null while the run is in progress (or its instance died)
    finished_at   text,
    -- loans (overdue) or installments (reminders) handled
    processed     integer not null default 0 check (processed >= 0),
    -- loans or installments that failed and are retried by the next run
    errors        integer not null default 0 check (errors >= 0),
    primary key (job, as_of)
);
-- Catch-up's "last finished date of this job".
create index job_runs_finished on job_runs (job, as_of) where finished_at is not null;
