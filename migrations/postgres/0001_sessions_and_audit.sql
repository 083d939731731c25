-- Sessions, login transactions, cross-host hand-offs and the audit trail (PostgreSQL).
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    iss         TEXT NOT NULL,
    sub         TEXT NOT NULL,
    sid         TEXT,
    identity    TEXT NOT NULL,
    id_token    TEXT NOT NULL,
    login_at    BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);
CREATE INDEX sessions_by_subject ON sessions (iss, sub);
CREATE INDEX sessions_by_sid ON sessions (iss, sid);

CREATE TABLE login_transactions (
    state_hash   TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    nonce        TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    target_host  TEXT NOT NULL,
    return_to    TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE handoffs (
    code_hash   TEXT PRIMARY KEY,
    target_host TEXT NOT NULL,
    return_to   TEXT NOT NULL,
    session     TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    iss        TEXT,
    sub        TEXT,
    app        TEXT,
    request_id TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_events (at_ms);
