-- Framings and stances (public contract). Only the current model of each codebook is shown:
-- the one a classification run used last.

CREATE OR REPLACE VIEW current_framing_models AS
SELECT codebook, arg_max(model_version, activated_at) AS model_version
FROM framing_model_store
GROUP BY codebook;

CREATE OR REPLACE VIEW post_framings AS
SELECT f.post_id, f.framing, f.score, f.present, f.model_version, f.codebook
FROM framing_prediction_store f
JOIN current_framing_models m USING (codebook, model_version)
JOIN posts p USING (post_id);

CREATE OR REPLACE VIEW post_stances AS
SELECT s.post_id, s.stance, s.score, s.model_version, s.codebook, s.chosen
FROM stance_prediction_store s
JOIN current_framing_models m USING (codebook, model_version)
JOIN posts p USING (post_id);

-- Analysts' labels: the latest import per post and codebook.
CREATE OR REPLACE VIEW framing_labels AS
SELECT l.post_id, l.codebook, l.framings, l.stance, l.annotator, l.imported_at, l.source_file, l.note
FROM framing_label_store l
QUALIFY row_number() OVER (PARTITION BY l.post_id, l.codebook
                           ORDER BY l.imported_at DESC, l.source_file DESC, l.annotator DESC) = 1;

CREATE OR REPLACE VIEW model_cards AS
SELECT m.model_version, m.codebook, m.trained_at, m.activated_at,
       (m.model_version = c.model_version) AS is_current,
       m.n_labels, m.n_analyst_labels, m.n_codebook_examples, m.cv_groups,
       m.cv_framing_macro_f1, m.cv_stance_macro_f1, m.cv_stance_kappa,
       (SELECT list({'framing': x.framing, 'threshold': x.threshold, 'precision': x.precision,
                     'recall': x.recall, 'f1': x.f1, 'kappa': x.kappa, 'support': x.support}
                    ORDER BY x.framing)
        FROM framing_model_metrics x WHERE x.model_version = m.model_version) AS cv_framings,
       m.encoder, m.code_version, m.card
FROM framing_model_store m
LEFT JOIN current_framing_models c USING (codebook);
