"""Each queue kind selects the rows an independent pandas computation on the same rows selects, on
SQLite and on a real PostgreSQL server; limits, seeds, stratification and second reviews."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from lidframe.errors import ConfigError
from lidframe.review import QUEUE_KINDS, Reviews
from lidframe.store.schema import review_items, review_queues
from tests.review.jobs import MIN_SPEECH, make_job

pytestmark = pytest.mark.postgres

JOB = "job-review"


def _items(reviews: Reviews, queue: str, second: bool = False) -> pd.DataFrame:
    c = review_items.c
    with reviews.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.row, c.row_id, c.position, c.stratum).where(
                c.job_id == JOB, c.queue == queue, c.second == second
            )
        ).all()
    return pd.DataFrame(rows, columns=["row", "row_id", "position", "stratum"])


def _answer(frame: pd.DataFrame, models: int) -> tuple[pd.Series, pd.Series]:
    """The job's answer and its margin, computed from the frame."""
    if models > 1:
        return frame["lang"], 2 * frame["consensus_prob"].astype(float) - 1
    second = frame["m1_topk"].map(lambda t: t[1]["prob"] if isinstance(t, list) else np.nan)
    return frame["m1_lang"], frame["m1_prob"].astype(float) - second.fillna(0.0)


def _expected(frame: pd.DataFrame, kind: str, models: int) -> set[int]:
    ok = frame["error"].isna()
    lang, margin = _answer(frame, models)
    speech = frame["speech_seconds"].astype(float)
    select = {
        "disagreement": lambda: frame["agree"].eq(False) if models > 1 else None,
        "low_margin": lambda: lang.ne("und") & (margin < 0.2),
        "code_switch": lambda: frame["code_switch"].eq(True).fillna(False).astype(bool),
        "und_near": lambda: (
            (lang.eq("und") & (speech > 0)) | (lang.ne("und") & (speech < MIN_SPEECH + 0.5))
        ),
        "language": lambda: lang.eq("fr"),
        "random": lambda: lang.notna(),
    }[kind]()
    chosen = (ok & select.fillna(False).astype(bool)).to_numpy()
    return set(frame.index[chosen])


@pytest.mark.parametrize("models", [1, 2])
def test_each_kind_selects_the_rows_pandas_selects(db_url, models):
    frame = make_job(db_url, n=300, models=models, seed=models)
    with Reviews(db_url, JOB) as reviews:
        for kind in QUEUE_KINDS:
            settings = {"language": "FR"} if kind == "language" else {}
            if kind == "disagreement" and models == 1:
                with pytest.raises(ConfigError, match="one model"):
                    reviews.build(kind)
                continue
            added = reviews.build(kind, second_share=0.0, **settings)
            name = "language-fr" if kind == "language" else kind
            items = _items(reviews, name)
            expected = _expected(frame, kind, models)
            assert expected, kind  # the synthetic job has rows of every kind
            assert set(items["row"]) == expected, kind
            assert added == len(expected)
            assert items["row_id"].tolist() == [f"r{r}" for r in items["row"]]
            # building again adds nothing
            assert reviews.build(kind, second_share=0.0, **settings) == 0


def test_a_limit_takes_the_lowest_rank_or_a_seeded_sample(db_url):
    frame = make_job(db_url, n=300, models=2)
    with Reviews(db_url, JOB) as reviews:
        assert reviews.build("low_margin", limit=10, second_share=0) == 10
        _, margin = _answer(frame, 2)
        pool = sorted(_expected(frame, "low_margin", 2), key=lambda r: (margin[r], r))
        got = set(_items(reviews, "low_margin")["row"])
        assert {margin[r] for r in got} == {margin[r] for r in pool[:10]}
        # a random order: the same for the same seed, another for another seed
        reviews.build("code_switch", name="a", seed=1, limit=5, second_share=0)
        reviews.build("code_switch", name="b", seed=1, limit=5, second_share=0)
        reviews.build("code_switch", name="c", seed=2, limit=5, second_share=0)
        a, b, c = (set(_items(reviews, q)["row"]) for q in "abc")
        assert a == b and a != c
        with pytest.raises(ConfigError, match="holds code_switch rows"):
            reviews.build("und_near", name="a")


def test_the_random_queue_is_stratified_by_predicted_language(db_url):
    frame = make_job(db_url, n=400, models=2, seed=5)
    limit = 60
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", limit=limit, second_share=0)
        items = _items(reviews, "random")
        with reviews.store.engine.connect() as conn:
            strata = conn.execute(
                sa.select(review_queues.c.strata).where(review_queues.c.queue == "random")
            ).scalar_one()
    answered = frame[frame["error"].isna() & frame["lang"].notna()]
    sizes = answered["lang"].value_counts()
    assert strata == {str(k): int(v) for k, v in sizes.items()}
    got = items["stratum"].value_counts()
    for lang, n in sizes.items():
        assert got[lang] == math.ceil(limit * n / len(answered)), lang
    # each row's stratum is the job's answer
    assert (items["stratum"].to_numpy() == frame.loc[items["row"], "lang"].to_numpy()).all()


def test_a_share_of_rows_goes_to_a_second_reviewer(db_url):
    make_job(db_url, n=600, models=2)
    with Reviews(db_url, JOB) as reviews:
        reviews.build("random", second_share=0.2, seed=3)
        first, second = _items(reviews, "random"), _items(reviews, "random", second=True)
    assert set(second["row"]) <= set(first["row"])
    share = len(second) / len(first)
    assert 0.14 < share < 0.26, share


def test_the_parser_offers_every_queue_kind():
    from lidframe.cli._options import REVIEW_QUEUES

    assert sorted(REVIEW_QUEUES) == sorted(QUEUE_KINDS)


def test_unknown_kinds_and_settings_are_one_line_errors():
    from lidframe.review import queue_kind

    with pytest.raises(ConfigError, match="unknown review queue 'nope'; choose one of"):
        queue_kind("nope")
    with pytest.raises(ConfigError, match="does not take language"):
        queue_kind("random", language="fr")
    with pytest.raises(ConfigError, match="needs --language"):
        queue_kind("language")
    with pytest.raises(ConfigError, match="unknown language code"):
        queue_kind("language", language="xx-nope")


def test_a_large_build_leaves_the_items_with_fresh_statistics(pg_url):
    """PostgreSQL plans the claim from the items' statistics: a build of many rows refreshes
    them at once (ANALYZE) instead of leaving the plan to an empty table's figures until
    autovacuum comes round."""
    make_job(pg_url, n=2500, models=2, partition_rows=500)
    with Reviews(pg_url, JOB) as reviews:
        added = reviews.build("random", second_share=0)
        assert added >= 1000
        with reviews.store.engine.connect() as conn:
            estimated = conn.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE relname = 'lidframe_review_items'")
            ).scalar_one()
    assert estimated == added
