-- Sessions and profiles.

-- Refresh tokens, stored only as hashes. Every token descends from one login
-- (its family); rotating marks the old token used; presenting a used token
-- again revokes the whole family.
create table refresh_tokens (
    id          uuid primary key,
    -- all tokens issued from one login share it
    family_id   uuid not null,
    user_id     uuid not null references users (id),
    -- sha-256 of the opaque token, hex; the token itself is never stored
    token_hash  text not null unique,
    issued_at   timestamptz not null,
    expires_at  timestamptz not null,
    -- set when the token was exchanged for a new pair
    used_at     timestamptz,
    -- set on logout, reuse detection, deactivation
    revoked_at  timestamptz
);
create index refresh_tokens_family on refresh_tokens (family_id);
create index refresh_tokens_user on refresh_tokens (user_id);

-- Personal details of a user, one row per user once set.
create table profiles (
    user_id       uuid primary key references users (id),
    first_name    text not null,
    last_name     text not null,
    address       text,
    -- E.164, e.g. +4915112345678
    phone_number  text,
    date_of_birth date,
    updated_at    timestamptz not null
);
