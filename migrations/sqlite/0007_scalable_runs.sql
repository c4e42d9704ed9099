-- Scalable runs: instances are added to or removed from a node while the run is up. The launch
-- request is kept (new instances get their parameters as the first ones did), and each
-- instance has a scaling status: '' (deployed with the run or by an earlier scaling), 'new'
-- (being added), 'leaving' (being removed: it sends its reports, then it is stopped), 'gone'
-- (removed: it holds back no barrier and counts against no quota).
ALTER TABLE runs ADD COLUMN scalable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN request TEXT NOT NULL DEFAULT '';
ALTER TABLE run_instances ADD COLUMN scale TEXT NOT NULL DEFAULT '';
