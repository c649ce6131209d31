-- Accounts and the transactional outbox: the first things every later table refers to.
-- SQLite twin of migrations/postgres/0001: uuid as 16-byte blob, timestamps as
-- RFC 3339 text, booleans as 0/1, json as text.

-- A person or a staff member who can log in.
create table users (
    id            blob primary key,
    -- stored lowercased, so uniqueness is case-insensitive
    email         text not null,
    username      text not null,
    -- argon2id PHC string; never the password itself
    password_hash text not null,
    role          text not null check (role in ('USER', 'MANAGER', 'ADMIN')),
    -- a deactivated user can neither log in nor refresh a token
    active        integer not null default 1,
    created_at    text not null,
    updated_at    text not null
);
create unique index users_email_key on users (email);
create unique index users_username_key on users (lower(username));

-- Every event is written here in the same transaction as the change it
-- describes; the relay publishes rows in `seq` order and stamps published_at.
create table outbox (
    -- commit order within one aggregate; the relay publishes in this order
    seq          integer primary key autoincrement,
    -- also the Nats-Msg-Id, so a re-published row is dropped by JetStream
    event_id     blob not null unique,
    -- full NATS subject, e.g. loans.events.payment.received
    subject      text not null,
    -- the loan (or user) the event is about
    aggregate_id blob not null,
    payload      text not null,
    created_at   text not null,
    -- null until JetStream acknowledged the message
    published_at text
);
create index outbox_unpublished on outbox (seq) where published_at is null;
