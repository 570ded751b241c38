-- The access audit read through the API (`GET /v1/audit`, scope `audit`, which a `*` key does not
-- get): the read-only role may SELECT `audit.api_access`. It still writes only through
-- `audit.record_access` (core/migrations/0013): no INSERT, UPDATE or DELETE on the table.
-- depends: 0019-alert-recovery

grant select on audit.api_access to assay_reader;
