-- Visit segments in parts (issue #11, core/src/segment/seal.rs): a (tenant, UTC day) of visits is sealed
-- as `parts` R2 objects, each the visits of one range of visitor ids, so that one part's rows and its
-- encoding stay bounded in the worker's memory however large the tenant (`seal::PART_VISITS` visits a
-- part on average; a day in one part keeps the key `segments/{tenant}/{YYYY-MM-DD}/visits`, a day in
-- several writes `.../visits-{part}-of-{parts}`). Parts hold disjoint visitors, so their distinct
-- visitor counts add up exactly, like days.
--
-- `segment_days` stays the day's registration: `version` (bumped by 0019's triggers on any write to the
-- day's visit rows) and now `parts`, the count the cron sealed it in last. `segment_parts` records per
-- part the version its object holds, its size and visits; a day answers from segments only when all
-- `parts` of its parts hold the current version in that count (`seal::sealed_days`), otherwise by SQL.
-- Erasure and retention treat it like every dated table (core/src/lifecycle.rs).
ALTER TABLE segment_days ADD COLUMN parts INTEGER NOT NULL DEFAULT 1;

CREATE TABLE segment_parts (
  tenant_id TEXT NOT NULL,
  day       INTEGER NOT NULL,  -- the UTC day's start, unix seconds (as segment_days.day)
  part      INTEGER NOT NULL,  -- 0 .. parts - 1
  parts     INTEGER NOT NULL,  -- the count the part was sealed in
  sealed    INTEGER NOT NULL,  -- the day's version the object holds
  bytes     INTEGER NOT NULL,
  visits    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day, part)
) WITHOUT ROWID;

-- Days sealed before parts: one object at the key a day in one part keeps.
INSERT INTO segment_parts (tenant_id, day, part, parts, sealed, bytes, visits)
  SELECT tenant_id, day, 0, 1, sealed, bytes, visits FROM segment_days WHERE sealed >= 0;

ALTER TABLE segment_days DROP COLUMN sealed;
ALTER TABLE segment_days DROP COLUMN bytes;
ALTER TABLE segment_days DROP COLUMN visits;
