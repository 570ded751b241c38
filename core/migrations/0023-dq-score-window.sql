-- Which rows a DQ score covers (assay.quality.scores): a gate on a daily-partitioned silver table
-- scores the days of its run (`window_start` .. `window_end`, inclusive); null for a score of the
-- whole table (gold, the reference tables, a run without partitions). `row_count` and `input_rows`
-- are then the window's rows; `table_rows` is the whole table's row count at the same moment (the
-- cheap whole-table invariant the gate still checks; null on rows from before this migration, whose
-- `row_count` was the whole table).
-- depends: 0022-bronze-no-row-hash

alter table quality.dq_scores
    add column if not exists window_start date,
    add column if not exists window_end date,
    add column if not exists table_rows bigint;
