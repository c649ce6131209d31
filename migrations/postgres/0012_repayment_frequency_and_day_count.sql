-- Issue 15 (SPEC §7): how often installments fall due and how a period's
-- interest counts days. Existing loans are monthly 30/360, as they were.
alter table loans add column repayment_frequency text not null default 'monthly'
    check (repayment_frequency in ('monthly', 'biweekly', 'weekly'));
alter table loans add column day_count text not null default '30/360'
    check (day_count in ('30/360', 'actual/365', 'actual/360'));
