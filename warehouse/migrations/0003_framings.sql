-- Framing and stance classification: analysts' labels, per-post predictions and model cards.
-- A codebook name scopes every row, so several debates can share one warehouse.

CREATE TABLE framing_label_store (
    post_id      VARCHAR NOT NULL,
    codebook     VARCHAR NOT NULL,
    framings     VARCHAR[] NOT NULL,      -- framing keys present; empty = none of them
    stance       VARCHAR NOT NULL,
    annotator    VARCHAR,
    imported_at  TIMESTAMPTZ NOT NULL,
    source_file  VARCHAR,
    note         VARCHAR
);

-- One row per post, model and framing. input_hash = the post's content_hash and its parent's,
-- so an edited post (or an edited parent) is classified again.
CREATE TABLE framing_prediction_store (
    post_id        VARCHAR NOT NULL,
    codebook       VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    input_hash     VARCHAR NOT NULL,
    framing        VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    present        BOOLEAN NOT NULL,
    predicted_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE stance_prediction_store (
    post_id        VARCHAR NOT NULL,
    codebook       VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    input_hash     VARCHAR NOT NULL,
    stance         VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    chosen         BOOLEAN NOT NULL,         -- the highest-scoring stance of the post
    predicted_at   TIMESTAMPTZ NOT NULL
);

-- A fitted model and its grouped cross-validation on the project's labels. activated_at moves
-- each time a run uses the model: the latest activated model of a codebook is the current one.
CREATE TABLE framing_model_store (
    model_version      VARCHAR PRIMARY KEY,
    codebook           VARCHAR NOT NULL,
    codebook_hash      VARCHAR,
    encoder            VARCHAR,
    code_version       VARCHAR,
    trained_at         TIMESTAMPTZ NOT NULL,
    activated_at       TIMESTAMPTZ NOT NULL,
    n_labels           INTEGER NOT NULL,
    n_analyst_labels   INTEGER,
    n_codebook_examples INTEGER,
    cv_groups          INTEGER,
    cv_framing_macro_f1 DOUBLE,
    cv_stance_macro_f1  DOUBLE,
    cv_stance_kappa     DOUBLE,
    card               JSON NOT NULL
);

CREATE TABLE framing_model_metrics (
    model_version  VARCHAR NOT NULL,
    framing        VARCHAR NOT NULL,
    threshold      DOUBLE,
    precision      DOUBLE,
    recall         DOUBLE,
    f1             DOUBLE,
    kappa          DOUBLE,
    support        INTEGER,
    PRIMARY KEY (model_version, framing)
);
