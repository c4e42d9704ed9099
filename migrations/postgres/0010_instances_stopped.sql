-- Whether an instance was stopped and removed by its connector (set once the connector said
-- so). The reaper stops what a run's end did not: an instance of an ended run, or one removed
-- by a scaling, whose stop failed or was cut off by a crash. Instances of runs that ended
-- before this column existed are taken as stopped.
ALTER TABLE run_instances ADD COLUMN stopped BIGINT NOT NULL DEFAULT 0;
UPDATE run_instances SET stopped = 1 WHERE scale = 'gone' OR run_id IN (SELECT id FROM runs WHERE ended_at IS NOT NULL);
