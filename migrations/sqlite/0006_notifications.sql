-- In-app notifications and the e-mail sent for each. SQLite twin of migrations/postgres/0006.

create table notifications (
    id             blob primary key,
    user_id        blob not null references users (id),
    -- the event (or reminder key) that caused it; with kind, unique, so a
    -- redelivered event or a rerun job never notifies twice
    event_id       blob not null,
    -- e.g. payment.received, reminder.due_in_3_days
    kind           text not null,
    title          text not null,
    body           text not null,
    created_at     text not null,
    -- null while unread
    read_at        text,
    -- e-mail delivery: pending, sent, failed (gave up), skipped (no address)
    email_status   text not null check (email_status in ('pending', 'sent', 'failed', 'skipped')),
    email_attempts integer not null default 0,
    -- the last delivery error, for operators
    email_error    text
);
create unique index notifications_event_kind on notifications (event_id, kind);
create index notifications_user on notifications (user_id, id);
create index notifications_email_pending on notifications (created_at) where email_status = 'pending';
