-- The SCIM service's recent requests, for `jitgate scim status`: what the IdP sent and how it
-- was answered. Kept bounded by the writer: the newest rows of each kind (authenticated, and
-- refused without a valid token) and none older than a week. `path` never holds the query.
-- `token_label` is the token's place in the config (`scim token 1`), never its value.
CREATE TABLE scim_requests (
    id          BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      BIGINT NOT NULL,
    scim_type   TEXT,
    token_label TEXT,
    request_id  TEXT NOT NULL
);
CREATE INDEX scim_requests_by_time ON scim_requests (at_ms);
