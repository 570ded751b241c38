-- Column masks per API key (`assay api-key create --mask <mart>.<column>`): each entry names a mart
-- column the key reads as null and may not filter or sort on (assay.api.keys, README "Read API").
-- depends: 0014-asked-by-reader

alter table api.keys add column if not exists masks text[] not null default '{}';
