"""Process mining over the event log with polars and pm4py: the log, its statistics (DFG, variants,
bottlenecks, durations), process models (discovery, replay, alignments) and process maps."""
