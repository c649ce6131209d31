-- Inbound payment messages that can never apply (bad JSON, unknown loan,
-- wrong currency, overpayment …): kept for operators, also copied to
-- loans.inbound.dead on the bus.
create table inbound_dead_letters (
    id            uuid primary key,
    -- the sender's reference, when the message had one
    external_ref  text,
    -- the raw message as received (may not be valid JSON)
    payload       bytea not null,
    -- why it cannot apply
    reason        text not null,
    received_at   timestamptz not null
);
create index inbound_dead_letters_received on inbound_dead_letters (received_at);
