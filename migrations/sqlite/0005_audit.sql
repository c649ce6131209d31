-- The audit trail: one entry per event, chained by hashes so that a changed,
-- removed or inserted entry is detectable. Written only by the audit
-- consumer; nothing updates or deletes an entry (the triggers refuse it).
-- SQLite twin of migrations/postgres/0005: uuid as blob, timestamps as text,
-- json as text.

create table audit_log (
    -- position in the chain: 1, 2, 3, … without gaps, assigned under the chain lock
    seq         integer primary key,
    -- the entry's own id (UUIDv7); the pagination cursor
    id          blob not null unique,
    -- the event this entry records; unique, so a redelivered event adds nothing
    event_id    blob not null,
    -- user id (text) of whoever caused the event, or 'system'
    actor       text not null,
    -- the event type, e.g. loan.approved
    action      text not null,
    -- 'loan' or 'user'
    entity      text not null,
    entity_id   blob,
    -- when the event happened (from the event) and when it was recorded here
    occurred_at text not null,
    recorded_at text not null,
    -- the event's data, as published
    detail      text not null,
    -- hex sha-256 of the previous entry (64 zeros for the first)
    prev_hash   text not null,
    -- hex sha-256(prev_hash || canonical JSON of this entry)
    hash        text not null
);
create unique index audit_log_event_id on audit_log (event_id);
create index audit_log_actor on audit_log (actor, seq);
create index audit_log_entity on audit_log (entity_id, seq);
create index audit_log_occurred on audit_log (occurred_at);

-- The head of the chain: one row, updated by every append (SQLite has one
-- writer anyway; the row keeps both backends' logic the same).
create table audit_chain (
    id        integer primary key check (id = 1),
    last_seq  integer not null,
    last_hash text not null
);
insert into audit_chain (id, last_seq, last_hash)
values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;
create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;
