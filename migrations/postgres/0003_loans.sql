-- Loans, their installments and their payments: the state one loan actor owns.
-- Written only by the loan store's commit (one transaction per actor turn,
-- guarded by `version`); read by the HTTP edge and the jobs.

-- One loan. Terms are immutable after the application; the figures after
-- `version` are denormalized from the installments and payments on every
-- commit so lists and jobs need no join.
create table loans (
    id                          uuid primary key,
    user_id                     uuid not null references users (id),
    status                      text not null check (status in
        ('PENDING', 'APPROVED', 'OVERDUE', 'PAID', 'REJECTED', 'CANCELLED', 'WRITTEN_OFF')),
    -- ISO 4217 code; its minor-unit exponent comes from the core's currency table
    currency                    text not null,
    principal_minor             bigint not null check (principal_minor > 0),
    -- exact percent per year as decimal text ('12.5'), never a float
    annual_interest_rate        text not null,
    term_months                 integer not null check (term_months between 1 and 480),
    repayment_method            text not null check (repayment_method in ('annuity', 'equal_principal', 'flat')),
    -- exact percent of a late installment's unpaid principal + interest, as decimal text
    late_fee_rate               text not null,
    -- days past due before a late fee applies
    grace_days                  integer not null check (grace_days between 0 and 365),
    -- explicit first due date from the application; null: one month after disbursement
    first_due_date              date,
    -- free text from the application, trimmed; null when none was given
    purpose                     text,
    applied_on                  date not null,
    -- set once approved
    disbursed_on                date,
    -- set once rejected
    rejection_reason            text,
    -- number of commands applied; every commit checks and bumps it (optimistic lock)
    version                     bigint not null check (version >= 1),
    -- sum of non-reversed payments
    total_paid_minor            bigint not null check (total_paid_minor >= 0),
    principal_outstanding_minor bigint not null check (principal_outstanding_minor >= 0),
    -- scheduled interest neither paid nor waived
    interest_outstanding_minor  bigint not null check (interest_outstanding_minor >= 0),
    -- late fees assessed and not yet paid
    fees_outstanding_minor      bigint not null check (fees_outstanding_minor >= 0),
    -- due date of the oldest installment with anything unpaid; null when none is
    -- (so it is also the oldest unpaid due date the overdue job looks for)
    next_due_date               date,
    created_at                  timestamptz not null,
    updated_at                  timestamptz not null
);
-- List filters; ids are UUIDv7, so `id` order is creation order and the page key.
create index loans_user_id on loans (user_id, id);
create index loans_status on loans (status, id);

-- One installment of an approved loan: what is owed and what has been paid on it.
create table installments (
    loan_id               uuid not null references loans (id) on delete cascade,
    -- position in the schedule, from 1
    seq                   integer not null check (seq >= 1),
    due_date              date not null,
    principal_minor       bigint not null check (principal_minor >= 0),
    interest_minor        bigint not null check (interest_minor >= 0),
    -- zero until assessed; assessed at most once
    late_fee_minor        bigint not null check (late_fee_minor >= 0),
    -- payments dated before this cannot pay the fee
    late_fee_assessed_on  date,
    fee_paid_minor        bigint not null check (fee_paid_minor >= 0),
    interest_paid_minor   bigint not null check (interest_paid_minor >= 0),
    principal_paid_minor  bigint not null check (principal_paid_minor >= 0),
    -- interest forgiven by an early payoff
    interest_waived_minor bigint not null check (interest_waived_minor >= 0),
    -- everything still owed (fee + interest + principal); kept by the store so the
    -- scheduler's partial index below holds only open installments
    unpaid_minor          bigint not null check (unpaid_minor >= 0 and unpaid_minor =
        late_fee_minor - fee_paid_minor + interest_minor - interest_paid_minor - interest_waived_minor
        + principal_minor - principal_paid_minor),
    primary key (loan_id, seq)
);
-- The jobs' "unpaid installments due on or before a date": one range scan.
create index installments_unpaid_due on installments (due_date, loan_id) where unpaid_minor > 0;

-- A payment received on a loan; kept forever, reversed ones too.
create table payments (
    -- chosen by the caller, so a retried command cannot record it twice
    id                    uuid primary key,
    loan_id               uuid not null references loans (id),
    -- arrival order within the loan (1, 2, …); allocation replays in this order
    arrival_seq           integer not null check (arrival_seq >= 1),
    amount_minor          bigint not null check (amount_minor > 0),
    -- always the loan's currency; kept so a payment row reads on its own
    currency              text not null,
    -- date the money was received (not the date it was recorded)
    paid_on               date not null,
    -- external bank or gateway reference; unique per loan when present
    reference             text,
    -- allocation totals in minor units; for a reversed payment, as when reversed
    fee_minor             bigint not null check (fee_minor >= 0),
    interest_minor        bigint not null check (interest_minor >= 0),
    principal_minor       bigint not null check (principal_minor >= 0),
    -- interest forgiven by this payment (a payoff); not part of the amount
    interest_waived_minor bigint not null check (interest_waived_minor >= 0),
    -- per installment: [{seq, fee_minor, interest_minor, principal_minor, interest_waived_minor}]
    allocation_lines      jsonb not null,
    -- set once reversed; a reversed payment counts for nothing
    reversed_on           date,
    created_at            timestamptz not null,
    check (fee_minor + interest_minor + principal_minor = amount_minor),
    unique (loan_id, arrival_seq)
);
create unique index payments_loan_reference_key on payments (loan_id, reference) where reference is not null;
