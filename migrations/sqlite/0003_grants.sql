-- Purpose-based, time-bound grants of elevated access. Times are unix milliseconds, so
-- expiry is enforced to the millisecond. `version` makes every change a compare-and-swap.
-- `end_call` makes the app-side call at the end of a grant survive restarts.
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    app           TEXT NOT NULL,
    grant_type    TEXT NOT NULL,
    iss           TEXT NOT NULL,
    sub           TEXT NOT NULL,
    username      TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    ticket        TEXT,
    duration_secs BIGINT NOT NULL,
    status        TEXT NOT NULL,
    approvals     TEXT NOT NULL,
    requested_at  BIGINT NOT NULL,
    decided_at    BIGINT,
    expires_at    BIGINT,
    ended_by      TEXT,
    first_used_at BIGINT,
    version       BIGINT NOT NULL,
    -- The app call to make when the grant ends: NULL (none), armed, pending, running, done.
    end_call      TEXT,
    end_call_at   BIGINT
);
CREATE INDEX grants_by_subject ON grants (app, iss, sub, status);
CREATE INDEX grants_by_status ON grants (status, expires_at);
CREATE INDEX grants_by_end_call ON grants (end_call);
