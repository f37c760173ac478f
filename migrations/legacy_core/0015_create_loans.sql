-- Loans (LD.LOANS.AND.DEPOSITS), disbursed at input.
CREATE TABLE loans (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount NUMERIC(28, 2) NOT NULL,
    interest_rate NUMERIC(12, 6) NOT NULL,
    term_months INT8 NOT NULL,
    drawdown_account TEXT NOT NULL,
    value_date DATE NOT NULL,
    outstanding_principal NUMERIC(28, 2) NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('CURRENT', 'LIQUIDATED')),
    journal INT8 NOT NULL
);
