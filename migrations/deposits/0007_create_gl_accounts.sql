-- The bank's own ledger accounts that deposits posts against, per currency and role
-- (cash, interest_expense, overdraft_interest_income, interest_payable_control).
CREATE TABLE gl_accounts (
    currency TEXT NOT NULL,
    role TEXT NOT NULL,
    ledger_account_id UUID NOT NULL,
    PRIMARY KEY (currency, role)
);
