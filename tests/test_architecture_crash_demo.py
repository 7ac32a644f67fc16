"""The notebook's crash demo (virtual time, one process): killed mid-answer, answered once, charged once."""

from __future__ import annotations

from course_utils.architecture import VectorIndex, crash_mid_stream, load_help_centre


def test_a_worker_killed_mid_answer_is_redelivered_and_answered_once():
    index = VectorIndex()
    load_help_centre(index, ["acme"])
    report = crash_mid_stream(index, "acme", "I forgot my password, how do I reset it?", idle_timeout_s=10.0)
    assert [m["role"] for m in report.messages] == ["user", "assistant"]  # one answer
    assert report.charges == 1  # one charge to the tenant
    complete = report.ledger[~report.ledger["disconnected"].astype(bool)]
    cut = report.ledger[report.ledger["disconnected"].astype(bool)]
    assert len(complete) == 1 and len(cut) == 1  # the killed stream is billed for what it generated
    assert int(cut["output_tokens"].iloc[0]) < int(complete["output_tokens"].iloc[0])
    assert report.deltas[0] == "delta" and report.deltas[-1] == "end"
    after = report.deltas[len(report.deltas) - 1 - report.deltas[::-1].index("restart") + 1 :]
    assert set(after[:-1]) == {"delta"}  # after the last restart, one whole answer
    assert report.answered_at_s >= report.killed_at_s + 10.0  # redelivered after the idle timeout
