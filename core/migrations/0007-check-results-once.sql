-- Each check evaluation is recorded once per run: the check-results recorder (assay.quality.store)
-- upserts on (run_id, asset_key, check_name), so the sensor and `assay run` may both record a run.
-- A home recorded before this keeps its latest row of any duplicate.
-- depends: 0006-api-keys

delete from quality.check_results older
using quality.check_results newer
where older.run_id = newer.run_id
  and older.asset_key = newer.asset_key
  and older.check_name = newer.check_name
  and older.result_id < newer.result_id;

create unique index if not exists check_results_once
    on quality.check_results (run_id, asset_key, check_name);
