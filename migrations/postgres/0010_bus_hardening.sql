-- Issue 11, the bus side: inbound references unique across loans, dead
-- letters listed and replayed by operators, e-mails claimed before they are
-- sent, and published outbox rows purged after a retention.

-- An external reference pays one loan only (SPEC §5): the same reference
-- sent for a second loan is a dead letter, never a second payment. Fails if
-- a database already holds one reference on two loans; an operator must
-- look at those payments first.
drop index payments_loan_reference_key;
create unique index payments_reference_key on payments (reference) where reference is not null;

-- hex sha-256 of the payload: one dead letter per distinct message, however
-- often it is delivered (rows from before this migration have none)
alter table inbound_dead_letters add column payload_digest text;
create unique index inbound_dead_letters_digest on inbound_dead_letters (payload_digest);
-- the last replay by an ADMIN: when, what happened (applied, already_applied,
-- not_applied) and why; null until replayed
alter table inbound_dead_letters add column replayed_at timestamptz;
alter table inbound_dead_letters add column replay_outcome text
    check (replay_outcome in ('applied', 'already_applied', 'not_applied'));
alter table inbound_dead_letters add column replay_detail text;

-- An instance sends a pending e-mail only after claiming it until this time;
-- nobody else touches it meanwhile. A sender that dies leaves the claim to
-- lapse, and the mail is sent again later with the same Message-ID.
alter table notifications add column email_claimed_until timestamptz;

-- The retention purge finds published rows by age.
create index outbox_published on outbox (published_at) where published_at is not null;

-- Rows the retention purge deleted, counted in the purge's own transaction,
-- so events_published_total (published rows + purged rows) never goes down.
create table outbox_purged (
    id   smallint primary key check (id = 1),
    purged_rows bigint not null check (purged_rows >= 0)
);
insert into outbox_purged (id, purged_rows) values (1, 0);
