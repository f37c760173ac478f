-- Every operator action on a saga: who, why, what it was and what the saga was before.
CREATE TABLE saga_operator_actions (
    saga_id UUID NOT NULL,
    id UUID NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    status_before TEXT NOT NULL,
    status_after TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (saga_id, id)
);
