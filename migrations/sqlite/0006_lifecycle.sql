-- The lifecycle queue: effects of directory changes (a leaver's sessions, grants and app
-- accounts; a return) kept as rows before they are attempted, so a crash loses none.
-- `caused_by` holds the job's `by` (BY is an SQL keyword). Times are unix ms.
-- `state` is pending, running, done or failed; a running job whose `updated_at_ms` is old
-- is taken again (its runner died).
CREATE TABLE lifecycle_jobs (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    caused_by     TEXT NOT NULL,
    reason        TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL,
    next_at_ms    BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    last_error    TEXT
);
CREATE INDEX lifecycle_jobs_due ON lifecycle_jobs (state, next_at_ms);
CREATE INDEX lifecycle_jobs_by_created ON lifecycle_jobs (created_at_ms);

-- Which directory value (the configured claim's value) a signed-in identity links to.
-- `removed_at_ms` is set while the directory says that person left.
CREATE TABLE identity_links (
    iss           TEXT NOT NULL,
    sub           TEXT NOT NULL,
    link_value    TEXT NOT NULL,
    seen_at_ms    BIGINT NOT NULL,
    removed_at_ms BIGINT,
    PRIMARY KEY (iss, sub)
);
CREATE INDEX identity_links_by_value ON identity_links (link_value);
