"""Checks for lesson 04 (Batch processing).

4.1 ``build_batches``, 4.2 ``poll_until_ended``, 4.3 ``join_and_triage``, 4.4 ``resubmit_failures``.
4.2 runs the student's poller against a private simulator that shares a virtual clock with it, so
the ledger's arrival times of ``GET /v1/messages/batches/{id}`` are the poller's own schedule
(hours of batch life in a fraction of a second).

Every sentence of each contract has a case that fails an answer breaking it (issue 14): 4.1 row
order, empty reviews, an empty frame, ids stable in another process (``hash`` salted differently
in the answer's namespace), the caller's frame unchanged; 4.2 a cap on the waits and a batch that
has already ended; 4.3 text on every succeeded row (several blocks, a thinking block first) and
None elsewhere, every documented error type and an undocumented one against the transient allow-list,
a merge colliding with the inputs' own ``text``, empty inputs, inputs and lines unchanged, and 40
seeded random batches against the contract; 4.4 pending and missing items, an empty job and
``params_by_id`` unchanged.
"""

from __future__ import annotations

from .build_batches import build
from .common import ID_COLUMN, MODEL, make_params
from .poll_until_ended import poll
from .resubmit_failures import resubmit
from .join_and_triage import triage


__all__ = ["EXERCISES", "ID_COLUMN", "MODEL", "make_params"]

EXERCISES = [build, poll, triage, resubmit]
