-- Accounts and the transactional outbox: the first things every later table refers to.

-- A person or a staff member who can log in.
create table users (
    id            uuid primary key,
    -- stored lowercased, so uniqueness is case-insensitive
    email         text not null,
    username      text not null,
    -- argon2id PHC string; never the password itself
    password_hash text not null,
    role          text not null check (role in ('USER', 'MANAGER', 'ADMIN')),
    -- a deactivated user can neither log in nor refresh a token
    active        boolean not null default true,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);
create unique index users_email_key on users (email);
create unique index users_username_key on users (lower(username));

-- Every event is written here in the same transaction as the change it
-- describes; the relay publishes rows in `seq` order and stamps published_at.
create table outbox (
    -- commit order within one aggregate; the relay publishes in this order
    seq          bigserial primary key,
    -- also the Nats-Msg-Id, so a re-published row is dropped by JetStream
    event_id     uuid not null unique,
    -- full NATS subject, e.g. loans.events.payment.received
    subject      text not null,
    -- the loan (or user) the event is about
    aggregate_id uuid not null,
    payload      jsonb not null,
    created_at   timestamptz not null,
    -- null until JetStream acknowledged the message
    published_at timestamptz
);
create index outbox_unpublished on outbox (seq) where published_at is null;
