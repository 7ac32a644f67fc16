"""The library's shared conventions: one progress protocol, one client type, one table protocol."""

from __future__ import annotations

from course_utils.progress import ProgressBar, ProgressEvent
from course_utils.tables import Tabular


def test_event_fraction_is_bounded_and_unknown_without_total():
    assert ProgressEvent(3, 4, 1.0).fraction == 0.75
    assert ProgressEvent(5, 4, 1.0).fraction == 1.0
    assert ProgressEvent(3, None, 1.0).fraction is None
    assert ProgressEvent(0, 0, 0.0).fraction is None


def test_text_bar_prints_sparse_lines_and_the_end_once(capsys):
    bar = ProgressBar(100, "jobs", every=50, widget=False)
    for done in range(1, 101):
        bar(ProgressEvent(done, 100, done / 10))
    bar(ProgressEvent(100, 100, 11.0))  # a repeated final event prints nothing new
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["jobs: 50/100 (50%) after 5.0 s", "jobs: 100/100 (100%) after 10.0 s"]
    assert bar.last == ProgressEvent(100, 100, 11.0)


def test_bar_takes_its_total_from_the_events_when_not_given(capsys):
    bar = ProgressBar(label="polls", every=100, widget=False)
    bar(ProgressEvent(1, 2, 0.5))
    bar(ProgressEvent(2, 2, 1.0))
    assert capsys.readouterr().out.splitlines() == ["polls: 2/2 (100%) after 1.0 s"]


def test_tabular_protocol_is_structural():
    class Rows:
        def frame(self):
            return []

    assert isinstance(Rows(), Tabular)
    assert not isinstance(object(), Tabular)
