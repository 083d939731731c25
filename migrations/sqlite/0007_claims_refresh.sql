-- Claims refresh (`session.refresh_claims`): one row per login that brought a refresh token.
-- `refresh_token` is sealed (AES-256-GCM, see src/auth/sealed.rs), never plain text.
-- `login_at` (unix seconds) and `sid` (the IdP session, when it names one) tie the row to its
-- login's sessions: a row whose sessions are all gone is deleted by the sweep. `group_list` is the JSON list last applied (NULL: unknown).
-- `taken_until_ms` is a runner's lease: a row is taken by one replica at a time.
CREATE TABLE claims_refresh (
    login_id       TEXT PRIMARY KEY,
    iss            TEXT NOT NULL,
    sub            TEXT NOT NULL,
    login_at       BIGINT NOT NULL,
    sid            TEXT,
    refresh_token  TEXT NOT NULL,
    group_list     TEXT,
    next_at_ms     BIGINT NOT NULL,
    taken_until_ms BIGINT NOT NULL,
    failures       BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX claims_refresh_due ON claims_refresh (next_at_ms);
CREATE INDEX claims_refresh_by_subject ON claims_refresh (iss, sub);
