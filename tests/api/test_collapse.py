"""The one function that turns a group from our nurseries into the one
exception a user sees (wsstream._errors.collapse)."""

from __future__ import annotations

import pytest
import trio

from wsstream._errors import collapse


def cancelled() -> trio.Cancelled:
    # trio.Cancelled cannot be built directly; take a real one.
    caught: list[trio.Cancelled] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.sleep(1)
            except trio.Cancelled as exc:
                caught.append(exc)
                raise

    trio.run(main)
    return caught[0]


def test_a_plain_exception_is_itself() -> None:
    error = ValueError("x")
    assert collapse(error) is error


def test_the_first_real_exception_wins_over_cancellations_at_any_depth() -> None:
    error = KeyError("k")
    group = BaseExceptionGroup("outer", [cancelled(), BaseExceptionGroup("inner", [error])])
    assert collapse(group) is error


def test_only_cancellations_give_a_cancellation() -> None:
    first = cancelled()
    assert collapse(BaseExceptionGroup("g", [first, cancelled()])) is first


def test_other_real_exceptions_are_named_in_a_note() -> None:
    first, second = ValueError("first"), RuntimeError("second")
    result = collapse(ExceptionGroup("g", [first, second]))
    assert result is first
    assert any("RuntimeError('second')" in note for note in first.__notes__)


@pytest.mark.parametrize("depth", [1, 3])
def test_never_a_group(depth: int) -> None:
    exc: BaseException = OSError("deep")
    for _ in range(depth):
        exc = ExceptionGroup("wrap", [exc])  # type: ignore[list-item]
    assert not isinstance(collapse(exc), BaseExceptionGroup)
