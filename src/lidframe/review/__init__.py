"""Human review of a job's answers: queues of rows, answers committed as they are given, labels
that flow back as ground truth (issue 24): the back end, and the listening page that serves it.

A reviewer is shown one row at a time from a *queue* the user chose: rows the models disagree on,
low-margin answers, code switches, rows near the no-speech threshold, one predicted language, or a
random sample stratified by predicted language (the one that estimates the whole job's accuracy).
A share of a queue's rows (default 5%) goes to a second reviewer, for Cohen's kappa. Every answer
is a row of the job database, committed as it is given; rows are handed out under short leases, so
two reviewers never get the same row; an undo keeps the withdrawn answer.

Modules, each importing only those above it (the tables and every state change are in
:mod:`lidframe.store.reviews`; this package is the policy and the API):

* ``_queues``: the queue kinds, each a frozen dataclass with its SQL criteria; :func:`queue_kind`.
* ``_agreement``: Cohen's kappa, the stratified accuracy estimate with its Wilson interval, and
  which answer is a row's reviewed label.
* ``_session``: :class:`Reviews` (build, next, answer, undo, progress, status), :class:`Item`.
* ``_status``: :class:`ReviewStatus`, what ``lidframe review status`` prints.
* ``_export``: the reviewed labels as a manifest (for ``lidframe eval --labels``), Label Studio
  JSON out and in.

The listening page (``lidframe review RESULTS``, :func:`serve`, also ``lidframe.review``), in the
same order:

* ``_media``: a row's file in byte ranges, as stored (what a browser's player asks for).
* ``_server``: the Starlette application: the token gate, the page, its JSON API, the audio.
* ``_serve``: start and stop (127.0.0.1, a free port, the URL with its token), :class:`ReviewServer`.
* ``page/``: the page itself (HTML, CSS and JavaScript, no build step).

Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.review._agreement import (
        AccuracyEstimate,
        cohen_kappa,
        estimate_accuracy,
        review_pairs,
        row_labels,
        wilson_interval,
    )
    from lidframe.review._export import (
        export_reviews,
        import_label_studio,
        label_studio_tasks,
        reviewed_manifest,
    )
    from lidframe.review._queues import QUEUE_KINDS, QueueKind, queue_kind
    from lidframe.review._serve import ReviewServer, review, serve
    from lidframe.review._session import VERDICTS, Item, ModelAnswer, Progress, Reviews
    from lidframe.review._status import QueueCounts, ReviewStatus
    from lidframe.store.reviews import ItemLost

_EXPORTS = {
    "QUEUE_KINDS": "lidframe.review._queues",
    "VERDICTS": "lidframe.review._session",
    "AccuracyEstimate": "lidframe.review._agreement",
    "Item": "lidframe.review._session",
    "ItemLost": "lidframe.store.reviews",
    "ModelAnswer": "lidframe.review._session",
    "Progress": "lidframe.review._session",
    "QueueCounts": "lidframe.review._status",
    "QueueKind": "lidframe.review._queues",
    "ReviewServer": "lidframe.review._serve",
    "ReviewStatus": "lidframe.review._status",
    "Reviews": "lidframe.review._session",
    "cohen_kappa": "lidframe.review._agreement",
    "estimate_accuracy": "lidframe.review._agreement",
    "export_reviews": "lidframe.review._export",
    "import_label_studio": "lidframe.review._export",
    "label_studio_tasks": "lidframe.review._export",
    "queue_kind": "lidframe.review._queues",
    "review_pairs": "lidframe.review._agreement",
    "reviewed_manifest": "lidframe.review._export",
    "row_labels": "lidframe.review._agreement",
    "review": "lidframe.review._serve",
    "serve": "lidframe.review._serve",
    "wilson_interval": "lidframe.review._agreement",
}
__all__ = [
    "QUEUE_KINDS",
    "VERDICTS",
    "AccuracyEstimate",
    "Item",
    "ItemLost",
    "ModelAnswer",
    "Progress",
    "QueueCounts",
    "QueueKind",
    "ReviewServer",
    "ReviewStatus",
    "Reviews",
    "cohen_kappa",
    "estimate_accuracy",
    "export_reviews",
    "import_label_studio",
    "label_studio_tasks",
    "queue_kind",
    "review_pairs",
    "reviewed_manifest",
    "row_labels",
    "review",
    "serve",
    "wilson_interval",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
