-- A loan's annuity schedule, one row per monthly instalment, with what has been paid.
CREATE TABLE loan_schedule (
    loan_id TEXT NOT NULL,
    number INT8 NOT NULL,
    due_date DATE NOT NULL,
    principal NUMERIC(28, 2) NOT NULL,
    interest NUMERIC(28, 2) NOT NULL,
    paid_principal NUMERIC(28, 2) NOT NULL,
    paid_interest NUMERIC(28, 2) NOT NULL,
    PRIMARY KEY (loan_id, number)
);
