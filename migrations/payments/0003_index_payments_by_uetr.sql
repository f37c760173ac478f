-- One payment per UETR and direction: inbound deliveries are deduplicated by it.
CREATE UNIQUE INDEX payments_by_uetr ON payments (uetr, direction);
