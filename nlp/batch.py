"""One unit of analysis work: spaCy and MiniLM over a batch of texts, with no database.

A batch is plain data in and plain data out, so it can run in this process, in a worker
process, or (when the flows move to a cluster) on another machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlp import embed, linguistic


@dataclass(frozen=True)
class AnalysisBatch:
    nlp_texts: list[str]            # texts that need spaCy
    declared_langs: list[str | None]
    embed_texts: list[str]          # texts that need an embedding (may differ from nlp_texts)
    spacy_model: str = linguistic.DEFAULT_MODEL
    entities: bool = True           # run the entity recogniser
    precision: str = "auto"         # the encoder's arithmetic: auto, fp32 or bf16


@dataclass(frozen=True)
class AnalysisResult:
    analyses: list[linguistic.Analysis]
    vectors: np.ndarray             # float32, (len(embed_texts), 384)
    pipeline: str                   # the spaCy pipeline's name and components, stored with results


def process_batch(batch: AnalysisBatch) -> AnalysisResult:
    analyses = linguistic.analyse(batch.nlp_texts, batch.declared_langs, model=batch.spacy_model,
                                  entities=batch.entities)
    return AnalysisResult(analyses=analyses, vectors=embed.encode(batch.embed_texts, precision=batch.precision),
                          pipeline=linguistic.pipeline_name(batch.spacy_model, batch.entities))
