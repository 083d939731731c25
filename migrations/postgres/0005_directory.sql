-- The company directory as the IdP pushes it over SCIM: users, groups and memberships.
-- `resource` is the SCIM resource as JSON text, stored as given (a group's without members).
-- The `*_key` columns hold the lowercased userName/displayName, so uniqueness is
-- case-insensitive the same way on both backends (lowercased by jitgate, not by SQL).
-- `version` is bumped by every write; replaces name the version they read.
CREATE TABLE directory_users (
    id            TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id   TEXT,
    active        BIGINT NOT NULL,
    resource      TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX directory_users_by_user_name ON directory_users (user_name_key);
CREATE UNIQUE INDEX directory_users_by_external_id ON directory_users (external_id);

CREATE TABLE directory_groups (
    id               TEXT PRIMARY KEY,
    display_name     TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id      TEXT,
    resource         TEXT NOT NULL,
    version          BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);
CREATE UNIQUE INDEX directory_groups_by_display_name ON directory_groups (display_name_key);
CREATE UNIQUE INDEX directory_groups_by_external_id ON directory_groups (external_id);

CREATE TABLE directory_members (
    group_id TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX directory_members_by_user ON directory_members (user_id);
