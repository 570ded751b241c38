-- The vector index (assay.search.index): the embedding models and the search corpus in platinum.
-- Each model's HNSW index is made by the sync itself after that model's bulk load, not here.
-- depends: 0001-bronze

create table if not exists platinum.embedding_models (
    model                text primary key,
    dimension            integer not null check (dimension > 0),
    active               boolean not null default false,
    documents            integer not null default 0,
    index_name           text,
    hnsw_m               integer,
    hnsw_ef_construction integer,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    activated_at         timestamptz
);
create unique index if not exists embedding_models_one_active on platinum.embedding_models (active) where active;

create table if not exists platinum.embeddings (
    model        text not null,
    doc_id       text not null,
    content_hash text not null,
    text_hash    text not null,
    doc_type     text,
    title        text,
    body         text not null,
    category     text,
    department   text,
    vendor_id    text,
    doc_date     date,
    amount_eur   numeric(14, 2),
    embedding    vector not null,
    search_tsv   tsvector generated always as (
        to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || body)
    ) stored,
    embedded_at  timestamptz not null default now(),
    primary key (model, doc_id)
);
create index if not exists embeddings_search_tsv on platinum.embeddings using gin (search_tsv);
create index if not exists embeddings_model_text_hash on platinum.embeddings (model, text_hash);
create index if not exists embeddings_model_category on platinum.embeddings (model, category, doc_date);
create index if not exists embeddings_model_vendor on platinum.embeddings (model, vendor_id, doc_date);
create index if not exists embeddings_model_department on platinum.embeddings (model, department, doc_date);
