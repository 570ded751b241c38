-- API keys can expire (`assay api-key create --expires-in-days`): a key past `expires_at` is refused.
-- depends: 0008-bronze-retract

alter table api.keys add column if not exists expires_at timestamptz;
