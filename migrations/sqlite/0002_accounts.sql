-- Accounts jitgate created (or found) in apps, and the leases that make sure only one
-- jitgate replica creates a given user's account at a time. `claims_at` is the login time of
-- the claims last sent to the app (an older session never overrides a newer login's).
CREATE TABLE accounts (
    app            TEXT NOT NULL,
    iss            TEXT NOT NULL,
    sub            TEXT NOT NULL,
    username       TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    attrs_hash     TEXT NOT NULL,
    attributes     TEXT NOT NULL,
    claims_at      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_seen      BIGINT NOT NULL,
    deactivated_at BIGINT,
    PRIMARY KEY (app, iss, sub)
);

CREATE TABLE provisioning_leases (
    app        TEXT NOT NULL,
    iss        TEXT NOT NULL,
    sub        TEXT NOT NULL,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app, iss, sub)
);
