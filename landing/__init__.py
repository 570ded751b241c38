"""Landing files: where raw files are found and how they are named, the bronze loader (COPY into
raw JSONB, nothing dropped), and the sample generator. A library: no Dagster assets here."""
