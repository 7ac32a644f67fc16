"""What two or more lesson 08 checks share.

8.1 and 8.3: the topic and group, the inbox's tables, a worker process with its own connection (and
its memory, forgotten on a restart), committed rows as another process reads them, and the bus that
checks each ack. 8.2, 8.3 and 8.4: the help centre's vector index. 8.2 and 8.3: the two tenants'
colliding conversation and the articles a system prompt carries.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sqlite3
import weakref
from typing import Any

from ...architecture.bus import InMemoryBus
from ...architecture.help_centre import load_help_centre
from ...architecture.store import DeskStore
from ..framework import CheckError
from ...architecture.vectors import VectorIndex


TOPIC, GROUP = "message.received", "model"
INBOX_SQL = "CREATE TABLE IF NOT EXISTS processed (consumer_group TEXT, message_id TEXT, PRIMARY KEY (consumer_group, message_id))"
WORK_SQL = "CREATE TABLE IF NOT EXISTS answers (message_id TEXT, state TEXT)"


class Crash(CheckError):
    """The worker dies here (the check's stand-in for a kill -9)."""


class Process:
    """One worker process of the check: its own connection to the inbox's database file.

    :meth:`restart` is what a deploy or a crash does to a process: the connection goes (an open
    transaction with it), and the module's memory starts over, so every module-level set, dict or list
    the answer uses, and its default arguments, are put back as they were when the check first ran it
    (each case also starts that way: a fresh process).
    """

    def __init__(self, fn: Any, path: str, *, schema: str = WORK_SQL) -> None:
        self.fn, self.path, self.schema = fn, path, schema
        self._memory = _memory_of(fn)
        if fn not in _FIRST_SEEN:  # the module's memory when the check first met this answer
            _FIRST_SEEN[fn] = copy.deepcopy([value for _, value in self._memory])
        self._initial = _FIRST_SEEN[fn]
        self._forget()  # each case starts as a fresh process
        self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=1.0)  # Python's default: a transaction opens before a write
        db.execute(INBOX_SQL)
        db.execute(self.schema)
        db.commit()
        return db

    def _forget(self) -> None:
        for (_, value), initial in zip(self._memory, copy.deepcopy(self._initial)):
            if isinstance(value, list):
                value[:] = initial
            else:
                value.clear()
                value.update(initial)

    def restart(self) -> None:
        self.db.close()
        self._forget()
        self.db = self._connect()


_FIRST_SEEN: "weakref.WeakKeyDictionary[Any, list[Any]]" = weakref.WeakKeyDictionary()


def _memory_of(fn: Any) -> list[tuple[str, Any]]:
    """The mutable state a process would lose: module-level sets, dicts and lists that ``fn``, a function
    it defines or a module-level function it calls (8.3 calls the answer's 8.1 and 8.2) names, and their
    default arguments."""
    found: dict[int, tuple[str, Any]] = {}
    functions, seen = [fn], set()
    while functions:
        f = functions.pop()
        if id(f) in seen or not inspect.isfunction(f):
            continue
        seen.add(id(f))
        names: set[str] = set()
        stack = [f.__code__]
        while stack:
            code = stack.pop()
            names.update(code.co_names)
            stack += [c for c in code.co_consts if inspect.iscode(c)]
        for n in sorted(names):
            value = f.__globals__.get(n)
            if inspect.isfunction(value) and value.__module__ == f.__module__:
                functions.append(value)
            elif type(value) in (set, dict, list):
                found.setdefault(id(value), (n, value))
        defaults = [*(f.__defaults__ or ()), *(f.__kwdefaults__ or {}).values()]
        for i, v in enumerate(defaults):
            if type(v) in (set, dict, list):
                found.setdefault(id(v), (f"default {i} of {f.__name__}", v))
    return list(found.values())


def committed(path: str, sql: str, args: tuple = ()) -> list[tuple]:
    """What another process sees: committed rows only."""
    db = sqlite3.connect(path, timeout=1.0)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


class CheckingBus(InMemoryBus):
    """A bus that notes, at each ack, whether the message was committed as processed; with ``doomed``,
    the first ack of that message never happens: the worker dies just before it."""

    def __init__(self, path: str, doomed: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.path, self.doomed = path, doomed
        self.events_by_id: dict[str, str] = {}
        self.early_acks: list[str] = []

    async def ack(self, topic: str, group: str, event_id: str) -> bool:
        mid = self.events_by_id.get(event_id, "")
        recorded = committed(
            self.path, "SELECT 1 FROM processed WHERE consumer_group = ? AND message_id = ?", (group, mid)
        )
        if not recorded and mid not in self.early_acks:
            self.early_acks.append(mid)
        if self.doomed is not None and mid == self.doomed:
            self.doomed = None
            raise Crash("killed before the ack")
        return await super().ack(topic, group, event_id)


REFERENCES = {"DeskStore.history_within": DeskStore.history_within, "VectorIndex.search": VectorIndex.search}


@functools.cache
def help_centre_index() -> VectorIndex:
    index = VectorIndex()
    load_help_centre(index)
    return index


@functools.cache
def _articles(tenant: str) -> tuple[tuple[str, str], ...]:
    """The tenant's articles as the index stores them: (doc_id, docs.text)."""
    rows = help_centre_index().db.execute("SELECT doc_id, text FROM docs WHERE tenant = ? ORDER BY doc_id", (tenant,))
    return tuple((doc_id, text) for doc_id, text in rows.fetchall())


@functools.cache
def _all_articles() -> tuple[tuple[str, str, str], ...]:
    rows = help_centre_index().db.execute("SELECT tenant, doc_id, text FROM docs ORDER BY tenant, doc_id").fetchall()
    return tuple((t, d, x) for t, d, x in rows)


def articles_in(text: str, tenant: str) -> tuple[list[str], list[str]]:
    """The articles whose ``docs.text`` appears in ``text``: (the tenant's own doc ids, other tenants')."""
    own_texts = {x for _, x in _articles(tenant)}
    own = [d for d, x in _articles(tenant) if x in text]
    foreign = [d for t, d, x in _all_articles() if t != tenant and x not in own_texts and x in text]
    return own, foreign


FILLER = {"acme": "router", "globex": "SECRET-GLOBEX"}
"""Two tenants whose conversation ids collide; globex's turns carry a word acme must never see."""


def desk_store(new: dict[str, str] | None = None, *, turns: int = 6) -> DeskStore:
    """Both tenants' conversation ``c1``: ``turns`` answered turns, then a new message ``<tenant>-now``."""
    store = DeskStore()
    for tenant, words in FILLER.items():
        for i in range(turns):
            user = store.add_message(
                tenant, "c1", "user", f"turn {i}: my {words} " + "blinks " * 20, message_id=f"{tenant}-{i}"
            )
            store.save_answer(tenant, "c1", user.message_id, f"answer {i} about the {words} " + "restart it " * 15)
        text = (new or {}).get(tenant, "and now it is slow" if tenant == "acme" else "SECRET-GLOBEX question")
        store.add_message(tenant, "c1", "user", text, message_id=f"{tenant}-now")
    return store
