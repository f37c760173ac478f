-- The kinds of 0080 and `product_define`: the definition of a modern product (deposits'
-- CreateProduct), `target` its code and `parameters` its definition.
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_known CHECK (kind IN (
    'saga_force_compensate', 'saga_mark_resolved', 'payment_screening_release',
    'payment_screening_refuse', 'product_define'));
