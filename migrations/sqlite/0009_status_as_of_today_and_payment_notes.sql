-- SQLite twin of migrations/postgres/0009 (dates as YYYY-MM-DD text).
-- Issue 11: lists filter on a loan's status as of today, and back-dated
-- payments carry the note staff recorded with them.

-- Due date of the oldest installment whose principal or interest no live
-- payment covers, judged fee-blind as the core judges lateness (payments
-- cover installments in order); null when all are covered. A repaying loan
-- (APPROVED/OVERDUE) is OVERDUE on every day after it, whether or not the
-- overdue job has run yet. Written by every commit from the core's snapshot.
alter table loans add column overdue_after text;

-- Existing loans: the same rule in SQL (an installment is uncovered when the
-- running sum of principal + interest due exceeds what live payments cover).
update loans set overdue_after = (
    select min(due.due_date)
    from (
        select i.due_date,
               sum(i.principal_minor + i.interest_minor) over (order by i.seq) as due_so_far_minor
        from installments i
        where i.loan_id = loans.id
    ) due
    where due.due_so_far_minor > (
        select coalesce(sum(p.amount_minor + p.interest_waived_minor), 0)
        from payments p
        where p.loan_id = loans.id and p.reversed_on is null
    )
);

-- Why staff recorded the payment (required for a back-dated one); null otherwise.
alter table payments add column note text;
