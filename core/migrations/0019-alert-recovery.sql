-- Alerts per incident (assay.quality.alerts): `family` names what is failing (`run:<job>`,
-- `check:<asset>:<check>`, `stale:<layer>`, `dq:<table>`); while a family has an open row
-- (`recovered_at` null) no new alert is sent for it, and when it no longer fails one recovery notice
-- is sent and the row closed. Rows from before this migration are closed as they are (no recovery
-- notice for them).
-- depends: 0018-audit-refusals

alter table quality.alerts_sent
    add column if not exists family text,
    add column if not exists recovered_at timestamptz;
update quality.alerts_sent set recovered_at = sent_at where family is null and recovered_at is null;
create unique index if not exists alerts_sent_open on quality.alerts_sent (family) where recovered_at is null;
