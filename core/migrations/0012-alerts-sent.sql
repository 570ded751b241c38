-- Alerts already sent (assay.quality.alerts): one row per failure, so that a sensor evaluated on
-- every tick or after every run notifies once. `alert_key` names the failure: `run:<run id>` for a
-- failed run, `check:<asset>:<check>:<run id>` for a failed blocking check.
-- depends: 0011-asked-questions

create table if not exists quality.alerts_sent (
    alert_key text primary key,
    title     text not null,
    sent_at   timestamptz not null default now()
);
