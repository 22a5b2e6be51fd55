-- Visit segments (issue #11, core/src/segment/): the (tenant, UTC day) of visits sealed into R2 as one
-- columnar object, `segments/{tenant}/{YYYY-MM-DD}/visits`, by the hourly cron (copy mode: the visit
-- rows stay). `version` counts the writes to the day's visit rows since the day was first sealed (the
-- triggers below: any insert, update or delete of a `sessions` row whose visit starts that day, or of a
-- `page_visits` row of such a visit, e.g. a late or backfilled event); `sealed` is the version the
-- object holds (-1: none yet). The object answers for the day only while `sealed = version`; the cron
-- seals a day again when they differ. The cron reads `version` in the same D1 batch (one transaction)
-- as the rows it encodes, so a write that lands while it encodes leaves the day marked stale.
-- Erasure and retention treat it like every dated table (core/src/lifecycle.rs); the objects share the
-- archive's erasure and retention (`lifecycle::archive_prefixes`).
CREATE TABLE segment_days (
  tenant_id TEXT NOT NULL,
  day       INTEGER NOT NULL,  -- the UTC day's start, unix seconds (as visit_daily.day)
  version   INTEGER NOT NULL DEFAULT 0,
  sealed    INTEGER NOT NULL DEFAULT -1,
  bytes     INTEGER NOT NULL DEFAULT 0,
  visits    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;

CREATE TRIGGER segment_days_session_inserted AFTER INSERT ON sessions BEGIN
  UPDATE segment_days SET version = version + 1
  WHERE tenant_id = NEW.tenant_id AND day = CAST(NEW.first_ts AS INTEGER) / 86400 * 86400;
END;
CREATE TRIGGER segment_days_session_updated AFTER UPDATE ON sessions BEGIN
  UPDATE segment_days SET version = version + 1
  WHERE tenant_id = NEW.tenant_id AND day IN (CAST(NEW.first_ts AS INTEGER) / 86400 * 86400,
                                             CAST(OLD.first_ts AS INTEGER) / 86400 * 86400);
END;
CREATE TRIGGER segment_days_session_deleted AFTER DELETE ON sessions BEGIN
  UPDATE segment_days SET version = version + 1
  WHERE tenant_id = OLD.tenant_id AND day = CAST(OLD.first_ts AS INTEGER) / 86400 * 86400;
END;
CREATE TRIGGER segment_days_page_inserted AFTER INSERT ON page_visits BEGIN
  UPDATE segment_days SET version = version + 1
  WHERE tenant_id = NEW.tenant_id
    AND day = CAST(NEW.first_ts - NEW.since_visit AS INTEGER) / 86400 * 86400;
END;
CREATE TRIGGER segment_days_page_updated AFTER UPDATE ON page_visits BEGIN
  UPDATE segment_days SET version = version + 1
  WHERE tenant_id = NEW.tenant_id
    AND day IN (CAST(NEW.first_ts - NEW.since_visit AS INTEGER) / 86400 * 86400,
                CAST(OLD.first_ts - OLD.since_visit AS INTEGER) / 86400 * 86400);
END;
CREATE TRIGGER segment_days_page_deleted AFTER DELETE ON page_visits BEGIN
  UPDATE segment_days SET version = version + 1
  WHERE tenant_id = OLD.tenant_id
    AND day = CAST(OLD.first_ts - OLD.since_visit AS INTEGER) / 86400 * 86400;
END;
