-- Core storage: sources, collection runs, cursors, posts as received, edit history, provenance.
-- Keys are readable strings: post_id = '<platform>:<site>:<native_id>'.

CREATE TABLE sources (
    name        VARCHAR PRIMARY KEY,
    type        VARCHAR NOT NULL,
    options     JSON,              -- the source's config keys, secrets never included
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);

CREATE TABLE pipeline_runs (
    run_id       VARCHAR NOT NULL,     -- shared by a run and its stages
    kind         VARCHAR NOT NULL,     -- run (the nightly flow) | collect | analyze | report
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,     -- running | ok | partial | failed
    config_hash  VARCHAR,
    flow_run_id  VARCHAR,
    stats        JSON,
    error        VARCHAR,
    PRIMARY KEY (run_id, kind)
);

CREATE TABLE collection_runs (
    run_id          VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,  -- running | ok | partial | failed
    fetched         INTEGER DEFAULT 0,
    new             INTEGER DEFAULT 0,
    updated         INTEGER DEFAULT 0,
    skipped_consent INTEGER DEFAULT 0,
    failed          INTEGER DEFAULT 0,
    seconds         DOUBLE,
    requests        INTEGER DEFAULT 0,
    error           VARCHAR,
    PRIMARY KEY (run_id, source)
);

CREATE TABLE source_cursors (
    source      VARCHAR PRIMARY KEY,
    cursor      JSON NOT NULL,
    run_id      VARCHAR,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE post_store (
    post_id       VARCHAR PRIMARY KEY,
    platform      VARCHAR NOT NULL,
    site          VARCHAR NOT NULL,
    native_id     VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    thread_id     VARCHAR,
    parent_id     VARCHAR,
    author        VARCHAR,              -- as received; views expose author_key only
    author_key    VARCHAR,
    created_at    TIMESTAMPTZ,
    edited_at     TIMESTAMPTZ,
    lang          VARCHAR,
    url           VARCHAR,
    content       VARCHAR,              -- as received (plain text or HTML)
    text          VARCHAR,              -- plain text derived from content
    spoiler_text  VARCHAR,
    content_hash  VARCHAR NOT NULL,
    raw           JSON,                 -- the payload as received
    collected_at  TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    deleted_at    TIMESTAMPTZ,
    run_id        VARCHAR  -- post_id is built from (platform, site, native_id), so it is the key
);

CREATE TABLE post_history (
    post_id       VARCHAR NOT NULL,
    content       VARCHAR,
    text          VARCHAR,
    content_hash  VARCHAR,
    edited_at     TIMESTAMPTZ,
    replaced_at   TIMESTAMPTZ NOT NULL,
    run_id        VARCHAR
);

CREATE TABLE provenance (
    recorded_at TIMESTAMPTZ NOT NULL,
    run_id      VARCHAR,
    source      VARCHAR,
    platform    VARCHAR,
    site        VARCHAR,
    native_id   VARCHAR,
    action      VARCHAR NOT NULL,   -- skipped_consent | edited | deleted | rejected
    reason      VARCHAR NOT NULL,
    detail      VARCHAR
);
