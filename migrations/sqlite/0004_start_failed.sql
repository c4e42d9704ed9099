-- An instance whose connector could not start it holds back no barrier. It was marked by the
-- word `gone` in `completed`, a column that otherwise names a run state; now it has a flag.
ALTER TABLE run_instances ADD COLUMN start_failed BIGINT NOT NULL DEFAULT 0;
UPDATE run_instances SET start_failed = 1, completed = '' WHERE completed = 'gone';
