-- Topics (public contract). topic_id is stable across runs; -1 ("no topic fits") is not shown.
-- Only current posts count: deleted posts and posts edited since their assignment drop out
-- until the next run assigns them again.

CREATE OR REPLACE VIEW post_topics AS
SELECT a.post_id, a.topic_id, a.probability
FROM post_topic_store a
JOIN post_store s ON s.post_id = a.post_id AND s.content_hash = a.content_hash
WHERE s.deleted_at IS NULL AND a.topic_id >= 0;

-- first_seen / last_seen: created_at of the topic's earliest and latest post.
CREATE OR REPLACE VIEW topics AS
WITH members AS (
    SELECT pt.topic_id, count(*) AS size, min(p.created_at) AS first_seen, max(p.created_at) AS last_seen
    FROM post_topics pt JOIN posts p USING (post_id)
    GROUP BY pt.topic_id
)
SELECT t.topic_id, t.label, t.keywords, coalesce(m.size, 0) AS size, m.first_seen, m.last_seen,
       t.model_version
FROM topic_store t
LEFT JOIN members m USING (topic_id);

-- Posts per topic and UTC calendar period (day, ISO week starting Monday, month); period_start
-- is the DATE the period starts. Posts without created_at are left out.
CREATE OR REPLACE VIEW topic_timeline AS
SELECT CAST(date_trunc(g.granularity, p.created_at AT TIME ZONE 'UTC') AS DATE) AS period_start,
       g.granularity, pt.topic_id, count(*) AS n_posts
FROM post_topics pt
JOIN posts p USING (post_id)
CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS g(granularity)
WHERE p.created_at IS NOT NULL
GROUP BY ALL;
