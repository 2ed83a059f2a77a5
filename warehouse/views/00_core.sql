-- Analyst views (public contract). Replaced on every init so they always match the code.

CREATE OR REPLACE VIEW posts AS
SELECT
    p.post_id, p.platform, p.source, p.native_id, p.thread_id, p.parent_id, p.url,
    p.author_key, p.created_at, p.edited_at, p.lang, p.text, p.collected_at
FROM post_store p
WHERE p.deleted_at IS NULL;

CREATE OR REPLACE VIEW threads AS
SELECT
    p.thread_id,
    any_value(p.platform) AS platform,
    any_value(p.source) AS source,
    coalesce(max(CASE WHEN p.post_id = p.thread_id THEN p.post_id END),
             arg_min(p.post_id, p.created_at)) AS root_post_id,
    count(*) AS n_posts,
    min(p.created_at) AS first_at,
    max(p.created_at) AS last_at
FROM posts p
GROUP BY p.thread_id;

CREATE OR REPLACE VIEW post_entities AS
SELECT e.post_id, e.text, e.label, e.start_char, e.end_char
FROM post_entity_store e JOIN posts USING (post_id);

CREATE OR REPLACE VIEW post_analysis AS
SELECT n.post_id, n.lang, n.is_english, n.n_tokens, n.n_sentences, n.sentences, n.lemmas,
       (e.post_id IS NOT NULL) AS has_embedding
FROM post_nlp n JOIN posts USING (post_id)
LEFT JOIN post_embeddings e USING (post_id);

CREATE OR REPLACE VIEW collection_log AS
SELECT run_id, source, started_at, finished_at, status, fetched, new, updated,
       skipped_consent, failed, round(seconds, 2) AS seconds, requests, error
FROM collection_runs;
