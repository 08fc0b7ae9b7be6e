"""The deliverer's intake: a buffer budget, partitions paused past it and resumed once a
tenth of it is free, and the next read position of every partition."""

from __future__ import annotations

from collections.abc import Iterable

from trace_stream.core.messages import TP, Message
from trace_stream.state.intake import Intake, budget

A, B = ("delay", 0), ("delay", 1)


class Calls:
    """A consumer that records pause, resume and seek."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def pause(self, tps: Iterable[TP]) -> None:
        self.calls.append(("pause", sorted(tps)))

    def resume(self, tps: Iterable[TP]) -> None:
        self.calls.append(("resume", sorted(tps)))

    def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(("seek", (tp, offset)))


def message(tp: TP, offset: int) -> Message:
    return Message(tp[0], tp[1], offset, None, b"", [])


def counted(consumer: Calls, limit: int, held: list[int]) -> Intake:
    """An intake bound by the count alone (its byte budget never spent)."""
    return Intake(consumer, limit, lambda: held[0], max_bytes=1, held_bytes=lambda: 0)


def test_the_budget_has_room_for_every_post_in_flight_and_two_whole_batches() -> None:
    assert budget(max_buffered=100, max_in_flight=10) == 100
    assert budget(max_buffered=5, max_in_flight=64) == 64
    assert budget(max_buffered=100, max_in_flight=10, batch_size=80) == 160


def test_a_record_read_past_the_budget_pauses_its_partition_to_be_read_again() -> None:
    consumer, held = Calls(), [0]
    intake = counted(consumer, 2, held)
    assert intake.admit(message(A, 7))
    held[0] = 2
    assert intake.room() == 0
    assert not intake.admit(message(A, 8))
    assert consumer.calls == [("pause", [A]), ("seek", (A, 8))]
    # Fetched before the pause took effect: not taken, read again after the resume.
    assert not intake.admit(message(A, 9))
    assert not intake.admit(message(B, 0))  # every partition waits for room
    intake.snapshot()
    assert intake.positions == {A: 8, B: 0}


def test_paused_partitions_resume_once_a_tenth_of_the_budget_is_free() -> None:
    consumer, held = Calls(), [20]
    intake = counted(consumer, 20, held)
    assert not intake.admit(message(A, 0))
    assert not intake.admit(message(B, 0))
    consumer.calls.clear()
    held[0] = 19  # one free slot would mean one pause and resume per record
    intake.throttle()
    assert consumer.calls == []
    held[0] = 18
    intake.throttle()
    assert consumer.calls == [("resume", [A, B])]
    intake.throttle()
    assert consumer.calls == [("resume", [A, B])], "resumed twice"
    assert intake.admit(message(A, 0))


def test_forget_resumes_and_drops_only_the_partitions_named() -> None:
    consumer, held = Calls(), [0]
    intake = counted(consumer, 1, held)
    assert intake.admit(message(A, 3))
    held[0] = 1
    assert not intake.admit(message(B, 5))
    consumer.calls.clear()
    intake.forget([A])  # A was not paused: nothing to resume
    assert consumer.calls == []
    intake.snapshot()
    assert intake.positions == {B: 5}
    snapshot = intake.positions
    intake.forget()
    assert consumer.calls == [("resume", [B])]
    intake.snapshot()
    assert intake.positions == {}
    assert snapshot == {B: 5}, "a snapshot another thread holds must not change"


def test_the_bytes_held_pause_reading_whatever_the_count_and_resume_at_nine_tenths() -> None:
    consumer, held_bytes = Calls(), [0]
    intake = Intake(
        consumer, 1_000_000, lambda: 3, max_bytes=1000, held_bytes=lambda: held_bytes[0]
    )
    held_bytes[0] = 600  # 3 records of 200 bytes on average: 2 more fit, and one over
    assert intake.room() == 3
    held_bytes[0] = 999
    assert intake.room() == 1
    assert intake.admit(message(A, 0))  # one record past the budget at most
    held_bytes[0] = 1200
    assert intake.room() == 0
    assert not intake.admit(message(A, 1))
    assert not intake.admit(message(B, 4))
    assert consumer.calls == [("pause", [A]), ("seek", (A, 1)), ("pause", [B]), ("seek", (B, 4))]
    consumer.calls.clear()
    held_bytes[0] = 901
    intake.throttle()
    assert consumer.calls == []
    held_bytes[0] = 900
    intake.throttle()
    assert consumer.calls == [("resume", [A, B])]
    assert intake.admit(message(A, 1))
