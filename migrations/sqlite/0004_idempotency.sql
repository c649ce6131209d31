-- Idempotency-Key records: a repeated state-changing POST returns the first
-- response instead of acting twice. SQLite twin of migrations/postgres/0004.
create table idempotency_keys (
    user_id          blob not null,
    -- the client's Idempotency-Key header
    idempotency_key  text not null,
    -- method and path of the first request; the key is bound to it
    route            text not null,
    -- sha-256 of the first request's body, hex; another body with this key is a 422
    body_hash        text not null,
    -- null while the first request is still running
    response_status  integer,
    response_body    blob,
    created_at       text not null,
    -- a request that crashed mid-way leaves its row; after this the key can be retried
    locked_until     text not null,
    -- kept at least 24 h
    expires_at       text not null,
    primary key (user_id, idempotency_key)
);
create index idempotency_keys_expiry on idempotency_keys (expires_at);
