-- Per-post analysis results. Each row remembers the content_hash it was computed from,
-- so an edited post is analysed again and an unchanged one never is.

CREATE TABLE post_nlp (
    post_id       VARCHAR PRIMARY KEY,
    content_hash  VARCHAR NOT NULL,
    lang          VARCHAR,
    is_english    BOOLEAN,
    n_tokens      INTEGER,
    n_sentences   INTEGER,
    sentences     VARCHAR[],
    lemmas        VARCHAR[],
    pipeline      VARCHAR,
    processed_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE post_entity_store (
    post_id     VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    label       VARCHAR NOT NULL,
    start_char  INTEGER,
    end_char    INTEGER
);

CREATE TABLE post_embeddings (
    post_id       VARCHAR PRIMARY KEY,
    content_hash  VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    embedding     FLOAT[384] NOT NULL,
    computed_at   TIMESTAMPTZ NOT NULL
);
