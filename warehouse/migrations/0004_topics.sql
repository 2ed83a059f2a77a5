-- Topics (BERTopic on the stored embeddings). Topic ids are stable across nightly runs: the
-- model lives in versioned folders next to the warehouse ('<warehouse>.topics/vNNNN/'), each run
-- assigns new posts to existing topics, and a periodic refit adds new topics without renumbering
-- the old ones. The latest row of topic_model_store is the current model.

CREATE TABLE topic_model_store (
    model_version    INTEGER PRIMARY KEY,      -- 1, 2, ...: one per fit or refit
    kind             VARCHAR NOT NULL,         -- fit (fresh ids) | refit (merged into the previous)
    fitted_at        TIMESTAMPTZ NOT NULL,
    run_id           VARCHAR,
    folder           VARCHAR NOT NULL,         -- folder name under '<warehouse>.topics/'
    embedding_model  VARCHAR NOT NULL,         -- post_embeddings.model the topics were fitted on
    n_posts          INTEGER NOT NULL,         -- posts the model was fitted on
    n_topics         INTEGER NOT NULL,
    n_new_topics     INTEGER NOT NULL,
    clusterer        VARCHAR,
    params           JSON
);

-- One row per topic ever created; model_version = the model that created it.
CREATE TABLE topic_store (
    topic_id       INTEGER PRIMARY KEY,
    label          VARCHAR NOT NULL,
    keywords       VARCHAR[] NOT NULL,
    model_version  INTEGER NOT NULL
);

-- One row per post; content_hash = the post version (and embedding) it was assigned from, so an
-- edited post gets a topic again. topic_id -1: no topic fits (yet); reconsidered at the next refit.
CREATE TABLE post_topic_store (
    post_id        VARCHAR PRIMARY KEY,
    content_hash   VARCHAR NOT NULL,
    topic_id       INTEGER NOT NULL,
    probability    DOUBLE NOT NULL,           -- cosine similarity to the topic centroid, in [0, 1]
    model_version  INTEGER NOT NULL,
    run_id         VARCHAR,
    assigned_at    TIMESTAMPTZ NOT NULL
);
