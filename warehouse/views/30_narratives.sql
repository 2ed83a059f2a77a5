-- Narrative metrics (public contract): framing and stance shares over time, significant shifts,
-- reply transitions, cross-platform lead/lag and emerging/fading topics.
--
-- Inputs: posts (00_core), post_framings and post_stances (10_framings, the current model of
-- each codebook), topic_timeline (20_topics). Periods are UTC calendar periods: day, ISO week
-- (starting Monday) and month; period_start is the DATE the period starts. Every metric is given
-- per platform and for platform = 'all', and per codebook (the last column: framing keys belong
-- to a codebook, and posts are compared only with posts classified under the same one). Only
-- classified posts count: a post without framing rows is not "no framing", it is not analysed
-- yet. Every view returns zero rows, not an error, while nothing is classified.

-- Statistics helpers --------------------------------------------------------------------------

-- 95% Wilson score interval for k successes out of n (z = 1.959964).
CREATE OR REPLACE MACRO fw_wilson_low(k, n) AS
    CASE WHEN n > 0 THEN greatest(0.0,
        ((k::DOUBLE / n) + 3.841458820694124 / (2.0 * n)
         - 1.959963984540054 * sqrt((k::DOUBLE / n) * (1.0 - k::DOUBLE / n) / n
                                    + 3.841458820694124 / (4.0 * n * n)))
        / (1.0 + 3.841458820694124 / n)) END;

CREATE OR REPLACE MACRO fw_wilson_high(k, n) AS
    CASE WHEN n > 0 THEN least(1.0,
        ((k::DOUBLE / n) + 3.841458820694124 / (2.0 * n)
         + 1.959963984540054 * sqrt((k::DOUBLE / n) * (1.0 - k::DOUBLE / n) / n
                                    + 3.841458820694124 / (4.0 * n * n)))
        / (1.0 + 3.841458820694124 / n)) END;

-- erfc(x) for x >= 0 (Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7); t = 1/(1 + 0.3275911 x).
CREATE OR REPLACE MACRO fw_erfc_series(t, x) AS
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    * exp(-x * x);

CREATE OR REPLACE MACRO fw_erfc(x) AS
    CASE WHEN x >= 0 THEN fw_erfc_series(1.0 / (1.0 + 0.3275911 * x), x)
         ELSE 2.0 - fw_erfc_series(1.0 / (1.0 - 0.3275911 * x), -x) END;

-- Standard normal CDF, and the two-sided p-value of a z statistic (computed as erfc directly,
-- so small p-values do not vanish in 1 - CDF).
CREATE OR REPLACE MACRO fw_norm_cdf(z) AS 0.5 * fw_erfc(-z / sqrt(2.0));
CREATE OR REPLACE MACRO fw_two_sided_p(z) AS least(1.0, fw_erfc(abs(z) / sqrt(2.0)));

-- Building blocks -----------------------------------------------------------------------------

-- Each dated post once per granularity, under its own platform and under 'all'.
CREATE OR REPLACE VIEW narrative_post_periods AS
SELECT p.post_id, g.granularity,
       CAST(date_trunc(g.granularity, p.created_at AT TIME ZONE 'UTC') AS DATE) AS period_start,
       unnest([p.platform, 'all']) AS platform
FROM posts p
CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS g(granularity)
WHERE p.created_at IS NOT NULL;

-- Classified posts in long form: one row per codebook and framing present, or a single 'none'
-- row when the classifier found none of the codebook's framings.
CREATE OR REPLACE VIEW narrative_post_framings AS
WITH flags AS (
    SELECT f.post_id, f.codebook, f.framing, bool_or(coalesce(f.present, false)) AS present,
           max(f.score) AS score
    FROM post_framings f JOIN posts p USING (post_id)
    WHERE f.framing IS NOT NULL
    GROUP BY f.post_id, f.codebook, f.framing
)
SELECT post_id, codebook, framing, score FROM flags WHERE present
UNION ALL
SELECT post_id, codebook, 'none' AS framing, NULL::DOUBLE AS score
FROM flags GROUP BY post_id, codebook HAVING NOT bool_or(present);

-- One stance per classified post and codebook: the highest-scoring one.
CREATE OR REPLACE VIEW narrative_post_stances AS
SELECT s.post_id, s.codebook, arg_max(s.stance, coalesce(s.score, 0.0)) AS stance, max(s.score) AS score
FROM post_stances s JOIN posts p USING (post_id)
WHERE s.stance IS NOT NULL
GROUP BY s.post_id, s.codebook;

-- Shares over time ----------------------------------------------------------------------------

-- Share of classified posts carrying each framing, with a 95% Wilson interval. Every framing the
-- classifier knows gets a row for every non-empty period (n_framing = 0 included).
CREATE OR REPLACE VIEW framing_timeline AS
WITH classified AS (SELECT DISTINCT post_id, codebook FROM narrative_post_framings),
keys AS (
    SELECT DISTINCT codebook, framing FROM post_framings WHERE framing IS NOT NULL AND framing <> 'none'
),
denominators AS (
    SELECT c.codebook, pp.granularity, pp.period_start, pp.platform, count(*) AS n_posts
    FROM narrative_post_periods pp JOIN classified c USING (post_id)
    GROUP BY c.codebook, pp.granularity, pp.period_start, pp.platform
),
numerators AS (
    SELECT f.codebook, pp.granularity, pp.period_start, pp.platform, f.framing, count(*) AS n_framing
    FROM narrative_post_periods pp JOIN narrative_post_framings f USING (post_id)
    WHERE f.framing <> 'none'
    GROUP BY f.codebook, pp.granularity, pp.period_start, pp.platform, f.framing
)
SELECT d.period_start, d.granularity, d.platform, k.framing, d.n_posts,
       coalesce(n.n_framing, 0) AS n_framing,
       coalesce(n.n_framing, 0)::DOUBLE / d.n_posts AS share,
       fw_wilson_low(coalesce(n.n_framing, 0), d.n_posts) AS ci_low,
       fw_wilson_high(coalesce(n.n_framing, 0), d.n_posts) AS ci_high,
       d.codebook
FROM denominators d
JOIN keys k ON k.codebook IS NOT DISTINCT FROM d.codebook
LEFT JOIN numerators n
       ON n.codebook IS NOT DISTINCT FROM d.codebook AND n.granularity = d.granularity
      AND n.period_start = d.period_start AND n.platform = d.platform AND n.framing = k.framing;

-- Share of posts with a stance taking each stance, with a 95% Wilson interval.
CREATE OR REPLACE VIEW stance_timeline AS
WITH keys AS (SELECT DISTINCT codebook, stance FROM narrative_post_stances),
denominators AS (
    SELECT s.codebook, pp.granularity, pp.period_start, pp.platform, count(*) AS n_posts
    FROM narrative_post_periods pp JOIN narrative_post_stances s USING (post_id)
    GROUP BY s.codebook, pp.granularity, pp.period_start, pp.platform
),
numerators AS (
    SELECT s.codebook, pp.granularity, pp.period_start, pp.platform, s.stance, count(*) AS n_stance
    FROM narrative_post_periods pp JOIN narrative_post_stances s USING (post_id)
    GROUP BY s.codebook, pp.granularity, pp.period_start, pp.platform, s.stance
)
SELECT d.period_start, d.granularity, d.platform, k.stance, d.n_posts,
       coalesce(n.n_stance, 0) AS n_stance,
       coalesce(n.n_stance, 0)::DOUBLE / d.n_posts AS share,
       fw_wilson_low(coalesce(n.n_stance, 0), d.n_posts) AS ci_low,
       fw_wilson_high(coalesce(n.n_stance, 0), d.n_posts) AS ci_high,
       d.codebook
FROM denominators d
JOIN keys k ON k.codebook IS NOT DISTINCT FROM d.codebook
LEFT JOIN numerators n
       ON n.codebook IS NOT DISTINCT FROM d.codebook AND n.granularity = d.granularity
      AND n.period_start = d.period_start AND n.platform = d.platform AND n.stance = k.stance;

-- Shifts --------------------------------------------------------------------------------------

-- Each period against the previous non-empty period of the same granularity and platform:
-- two-proportion z-test (pooled), then Benjamini-Hochberg over all tested framings and
-- platforms of that period, granularity and codebook. A pair is tested only when both periods
-- have at least 10 classified posts and the framing has at least 3 posts in one of them;
-- untested pairs have p_value and q_value NULL and are never significant.
-- significant = BH-adjusted q <= 0.05 (false discovery rate 5%).
CREATE OR REPLACE VIEW narrative_shifts AS
WITH paired AS (
    SELECT t.*,
           lag(t.period_start) OVER w AS period_start_prev,
           lag(t.n_posts) OVER w AS n_posts_prev,
           lag(t.n_framing) OVER w AS n_framing_prev,
           lag(t.share) OVER w AS share_prev
    FROM framing_timeline t
    WINDOW w AS (PARTITION BY t.codebook, t.granularity, t.platform, t.framing ORDER BY t.period_start)
),
tested AS (
    SELECT *,
           (n_posts_prev >= 10 AND n_posts >= 10 AND greatest(n_framing_prev, n_framing) >= 3) AS tested,
           (n_framing_prev + n_framing)::DOUBLE / (n_posts_prev + n_posts) AS pooled
    FROM paired
    WHERE period_start_prev IS NOT NULL
),
scored AS (
    SELECT *,
           CASE WHEN NOT tested THEN NULL
                WHEN pooled <= 0.0 OR pooled >= 1.0 THEN 1.0
                ELSE fw_two_sided_p((share - share_prev)
                                    / sqrt(pooled * (1.0 - pooled) * (1.0 / n_posts_prev + 1.0 / n_posts)))
           END AS p_value
    FROM tested
),
ranked AS (
    SELECT *,
           p_value * sum(CASE WHEN tested THEN 1 ELSE 0 END)
                         OVER (PARTITION BY codebook, granularity, period_start)
           / row_number() OVER (PARTITION BY codebook, granularity, period_start, tested
                                ORDER BY p_value, platform, framing) AS bh_step
    FROM scored
),
adjusted AS (
    SELECT *,
           CASE WHEN tested THEN least(1.0, min(bh_step) OVER (
               PARTITION BY codebook, granularity, period_start, tested
               ORDER BY p_value DESC, platform DESC, framing DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) END AS q_value
    FROM ranked
)
SELECT period_start, granularity, platform, framing, share_prev, share,
       share - share_prev AS delta, p_value,
       coalesce(tested AND q_value <= 0.05, false) AS significant,
       q_value, tested, period_start_prev, n_posts_prev, n_posts, n_framing_prev, n_framing, codebook
FROM adjusted;

-- Replies -------------------------------------------------------------------------------------

-- Every (parent framing, reply framing) combination of a classified reply to a parent classified
-- under the same codebook; 'none' stands for "no framing". A post with two framings
-- contributes to both.
CREATE OR REPLACE VIEW reply_framing_pairs AS
SELECT r.post_id AS reply_post_id, r.parent_id AS parent_post_id, r.platform, r.created_at,
       pf.framing AS parent_framing, rf.framing AS reply_framing, rf.codebook
FROM posts r
JOIN posts p ON p.post_id = r.parent_id
JOIN narrative_post_framings pf ON pf.post_id = p.post_id
JOIN narrative_post_framings rf ON rf.post_id = r.post_id AND rf.codebook IS NOT DISTINCT FROM pf.codebook;

-- How often a parent with framing X gets a reply with framing Y: n replies, and their share of
-- all classified replies to parents with framing X (a row's shares add up to more than 1 when
-- replies carry several framings).
CREATE OR REPLACE VIEW framing_transitions AS
WITH cells AS (
    SELECT codebook, parent_framing, reply_framing, count(DISTINCT reply_post_id) AS n
    FROM reply_framing_pairs GROUP BY codebook, parent_framing, reply_framing
),
rows_total AS (
    SELECT codebook, parent_framing, count(DISTINCT reply_post_id) AS n_replies
    FROM reply_framing_pairs GROUP BY codebook, parent_framing
)
SELECT c.parent_framing, c.reply_framing, c.n, c.n::DOUBLE / t.n_replies AS share,
       t.n_replies AS n_parent_replies, c.codebook
FROM cells c
JOIN rows_total t ON t.codebook IS NOT DISTINCT FROM c.codebook AND t.parent_framing = c.parent_framing;

-- Lead / lag ----------------------------------------------------------------------------------

-- Which platform's share of a framing moves first. Method: weekly shares per platform (weeks
-- with at least 5 classified posts); for every ordered pair of platforms A, B and lag k = 0..4
-- weeks, the Pearson correlation of A's share in week t with B's share in week t + k, over the
-- weeks where both exist (at least 6). The (pair, lag) with the highest positive correlation
-- wins: A leads B by k weeks; lag 0 means they move together (leader/follower then in
-- alphabetical order). One row per codebook, framing and pair of platforms; a framing whose
-- share never varies has no correlation and no row.
CREATE OR REPLACE VIEW framing_lead_lag AS
WITH weekly AS (
    SELECT codebook, framing, platform, period_start, share
    FROM framing_timeline
    WHERE granularity = 'week' AND platform <> 'all' AND n_posts >= 5
),
lags AS (SELECT range::INTEGER AS lag FROM range(0, 5)),
candidates AS (
    SELECT a.codebook, a.framing, a.platform AS leader, b.platform AS follower, l.lag,
           corr(a.share, b.share) AS r, count(*) AS n_periods
    FROM weekly a
    JOIN lags l ON true
    JOIN weekly b ON b.codebook IS NOT DISTINCT FROM a.codebook AND b.framing = a.framing
                 AND b.platform <> a.platform AND b.period_start = a.period_start + 7 * l.lag
    GROUP BY a.codebook, a.framing, a.platform, b.platform, l.lag
    HAVING count(*) >= 6
),
best AS (
    SELECT *, row_number() OVER (
        PARTITION BY codebook, framing, least(leader, follower), greatest(leader, follower)
        ORDER BY r DESC, lag, leader) AS rank
    FROM candidates
    WHERE r IS NOT NULL AND isfinite(r) AND r > 0 AND (lag > 0 OR leader < follower)
)
SELECT framing, leader AS leader_platform, follower AS follower_platform, lag AS lag_periods,
       'week' AS granularity, r AS correlation, n_periods,
       'argmax of weekly share cross-correlation, lags 0-4' AS method, codebook
FROM best
WHERE rank = 1;

-- Topics --------------------------------------------------------------------------------------

-- Each topic in each period against the previous period in which any topic had posts. share is
-- the topic's part of the period's topic-assigned posts. emerging: at least 3 posts and the
-- share at least doubled (or the topic was absent); fading: at least 3 posts before and the
-- share at least halved; baseline: the first period; otherwise steady.
CREATE OR REPLACE VIEW topic_trends AS
WITH tl AS (
    SELECT granularity, CAST(period_start AS DATE) AS period_start, topic_id, sum(n_posts) AS n_posts
    FROM topic_timeline
    WHERE n_posts > 0
    GROUP BY granularity, CAST(period_start AS DATE), topic_id
),
calendar AS (
    SELECT granularity, period_start,
           lag(period_start) OVER (PARTITION BY granularity ORDER BY period_start) AS prev_start
    FROM (SELECT DISTINCT granularity, period_start FROM tl)
),
totals AS (SELECT granularity, period_start, sum(n_posts) AS total FROM tl GROUP BY granularity, period_start),
ids AS (SELECT DISTINCT granularity, topic_id FROM tl),
grid AS (
    SELECT c.granularity, c.period_start, c.prev_start, i.topic_id,
           coalesce(cur.n_posts, 0) AS n_posts, coalesce(prev.n_posts, 0) AS prev_n,
           coalesce(cur.n_posts, 0)::DOUBLE / tc.total AS share,
           CASE WHEN c.prev_start IS NOT NULL THEN coalesce(prev.n_posts, 0)::DOUBLE / tp.total END AS prev_share
    FROM calendar c
    JOIN ids i ON i.granularity = c.granularity
    JOIN totals tc ON tc.granularity = c.granularity AND tc.period_start = c.period_start
    LEFT JOIN totals tp ON tp.granularity = c.granularity AND tp.period_start = c.prev_start
    LEFT JOIN tl cur ON cur.granularity = c.granularity AND cur.period_start = c.period_start
                    AND cur.topic_id = i.topic_id
    LEFT JOIN tl prev ON prev.granularity = c.granularity AND prev.period_start = c.prev_start
                     AND prev.topic_id = i.topic_id
)
SELECT period_start, granularity, topic_id, n_posts, prev_n,
       CASE WHEN prev_start IS NULL THEN 'baseline'
            WHEN n_posts >= 3 AND (prev_n = 0 OR share >= 2 * prev_share) THEN 'emerging'
            WHEN prev_n >= 3 AND share <= prev_share / 2 THEN 'fading'
            ELSE 'steady' END AS status,
       share, prev_share, prev_start AS period_start_prev
FROM grid
WHERE n_posts > 0 OR prev_n > 0;
