"""The trio ↔ asyncio bridge on its own, with plain asyncio coroutines standing in for ccxt."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from runtime._errors import NetworkError
from runtime.exchanges.ccxt import AsyncioBridge, Stream
from runtime.exchanges.ccxt._bridge import acquire_shared_bridge, release_shared_bridge
from tests.runtime.exchanges.ccxt.support import until


@pytest.fixture
async def bridge() -> AsyncIterator[AsyncioBridge]:
    async with AsyncioBridge(name="test-bridge") as b:
        yield b


async def _never() -> None:
    await asyncio.Event().wait()


async def _on_loop(bridge: AsyncioBridge, action: Callable[[], object]) -> None:
    """Call ``action()`` on the bridge's loop (inside one of its iterations)."""

    async def act() -> None:
        action()

    await bridge.run(act)


async def _pending_watch(
    bridge: AsyncioBridge,
) -> tuple[asyncio.Future[str], Callable[[], Awaitable[str]]]:
    """A future on the bridge loop, and a ``watch_*`` stand-in that awaits it: as ccxt.pro
    hands every watcher of a subscription the same future."""

    async def make_future() -> asyncio.Future[str]:
        return asyncio.get_running_loop().create_future()

    future = await bridge.run(make_future)

    async def watch() -> str:
        return await future

    return future, watch


async def test_run_returns_results_and_raises_errors_from_the_loop(
    bridge: AsyncioBridge,
) -> None:
    async def where(x: int) -> tuple[bool, str, int]:
        await asyncio.sleep(0.001)  # a timer: the pump waits for it as a trio deadline
        return asyncio.get_running_loop() is bridge.loop, threading.current_thread().name, x * 2

    # On trio's own thread, with the bridge's loop running only inside its steps.
    here = threading.current_thread().name
    assert await bridge.run(where, 21) == (True, here, 42)
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()

    async def fail() -> None:
        raise ValueError("from asyncio")

    with pytest.raises(ValueError, match="from asyncio"):
        await bridge.run(fail)

    def not_a_coroutine_function() -> Any:
        raise KeyError("before any await")

    with pytest.raises(KeyError, match="before any await"):
        await bridge.run(not_a_coroutine_function)
    assert bridge.in_flight == 0


async def test_many_concurrent_calls_each_get_their_own_result(bridge: AsyncioBridge) -> None:
    async def echo(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 3))
        return i

    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await bridge.run(echo, i)

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(one, i)
    assert results == {i: i for i in range(200)}


async def test_a_call_cancelled_among_held_calls_leaves_them_answered(
    bridge: AsyncioBridge,
) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def held(i: int) -> int:
        await release.wait()
        return i

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled on the loop")
            raise

    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await bridge.run(held, i)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(one, i)
        await trio.sleep(0.05)
        assert bridge.in_flight == 20
        with trio.move_on_after(0.05) as scope:
            await bridge.run(slow)
        assert scope.cancelled_caught
        assert seen == ["cancelled on the loop"]
        await _on_loop(bridge, release.set)
    assert results == {i: i for i in range(20)}
    assert bridge.in_flight == 0


async def test_cancelling_the_trio_caller_cancels_the_asyncio_task(bridge: AsyncioBridge) -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled on the loop")
            raise

    with trio.move_on_after(0.05) as scope:
        await bridge.run(slow)
    assert scope.cancelled_caught
    assert seen == ["cancelled on the loop"]  # already: run() waited for the task to end
    assert bridge.in_flight == 0
    assert await bridge.run(asyncio.sleep, 0, "still usable") == "still usable"


async def test_a_result_that_won_the_race_with_cancellation_is_returned(
    bridge: AsyncioBridge,
) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "done anyway"  # e.g. the order was placed before the cancel arrived
        return "not cancelled"

    got: list[str] = []
    with trio.move_on_after(0.05) as scope:
        got.append(await bridge.run(stubborn))
        await trio.lowlevel.checkpoint()  # the cancellation arrives here
    assert scope.cancelled_caught
    assert got == ["done anyway"]


async def test_an_already_cancelled_caller_sends_nothing(bridge: AsyncioBridge) -> None:
    called: list[bool] = []

    async def record() -> None:
        called.append(True)

    with trio.CancelScope() as scope:
        scope.cancel()
        await bridge.run(record)
    await bridge.run(asyncio.sleep, 0)  # anything submitted before has run by now
    assert called == []


async def test_a_call_cancelled_before_it_reached_the_loop_is_never_sent(
    bridge: AsyncioBridge,
) -> None:
    called: list[bool] = []

    async def record() -> None:
        called.append(True)

    scope = trio.CancelScope()

    async def caller() -> None:
        with scope:
            await bridge.run(record)

    async def cancel() -> None:
        scope.cancel()

    async with trio.open_nursery() as nursery:  # both run before trio next waits for I/O,
        nursery.start_soon(caller)  # which is when submitted calls go to the loop
        nursery.start_soon(cancel)
    await bridge.run(asyncio.sleep, 0)
    assert scope.cancelled_caught
    assert called == []


async def test_closing_fails_calls_in_flight_and_refuses_new_ones() -> None:
    bridge = AsyncioBridge().start()
    errors: list[BaseException] = []

    async def pending() -> None:
        try:
            await bridge.run(_never)
        except NetworkError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pending)
        await trio.sleep(0.05)
        await bridge.aclose()
    assert len(errors) == 1
    assert "closed while a call was in flight" in str(errors[0])
    assert not bridge.running
    assert bridge.loop.is_closed()
    with pytest.raises(trio.ClosedResourceError, match="is closed"):
        await bridge.run(asyncio.sleep, 0)
    await bridge.aclose()  # idempotent


async def test_stream_delivers_in_order_with_backpressure(bridge: AsyncioBridge) -> None:
    calls = 0

    async def produce() -> list[int]:
        nonlocal calls
        calls += 1
        return [calls]

    async with bridge.stream(
        produce, transform=lambda v: v, map_error=lambda e: e, buffer=3
    ) as stream:
        await trio.sleep(0.1)
        assert calls == 3  # three results wait; the pump waits for the consumer
        assert await stream.receive() == [1]
        await trio.sleep(0.05)
        assert calls == 4
        assert [await stream.receive() for _ in range(3)] == [[2], [3], [4]]


async def test_stream_ends_with_the_mapped_error_after_earlier_results(
    bridge: AsyncioBridge,
) -> None:
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionResetError("socket closed")
        return calls

    def map_error(exc: Exception) -> BaseException:
        return NetworkError(f"mapped: {exc}")

    stream = bridge.stream(flaky, transform=lambda v: v * 10, map_error=map_error)
    with trio.fail_after(5):
        assert await stream.receive() == 10
        assert await stream.receive() == 20
        with pytest.raises(NetworkError, match="mapped: socket closed") as caught:
            await stream.receive()
        assert isinstance(caught.value.__cause__, ConnectionResetError)
        with pytest.raises(trio.EndOfChannel):
            await stream.receive()
    await stream.aclose()


async def test_closing_a_stream_abandons_but_does_not_cancel_a_shared_watch(
    bridge: AsyncioBridge,
) -> None:
    shared, watch = await _pending_watch(bridge)
    first: Stream[str] = bridge.stream(watch, transform=str, map_error=lambda e: e)
    second: Stream[str] = bridge.stream(watch, transform=str, map_error=lambda e: e)
    await trio.sleep(0.05)
    await first.aclose()
    await trio.sleep(0.05)
    await _on_loop(bridge, lambda: shared.set_result("update"))
    with trio.fail_after(5):
        assert await second.receive() == "update"
    with pytest.raises(trio.ClosedResourceError):
        await first.receive()
    await second.aclose()


async def test_stopping_a_stream_from_the_producer_side_ends_it_cleanly(
    bridge: AsyncioBridge,
) -> None:
    # What CcxtExchange.aclose does: stop the pumps, then close ccxt, which rejects the
    # pending watches.
    pending, watch = await _pending_watch(bridge)
    stream: Stream[str] = bridge.stream(watch, transform=str, map_error=lambda e: e)
    await trio.sleep(0.02)
    stream._stop()
    await _on_loop(bridge, lambda: pending.set_exception(ConnectionError("closed by the user")))
    with trio.fail_after(5), pytest.raises(trio.EndOfChannel):
        await stream.receive()  # the end, not the error: the stream was stopped
    await stream.aclose()


async def test_a_stream_waiting_for_its_consumer_stops_at_once(bridge: AsyncioBridge) -> None:
    async def produce() -> int:
        return 1

    stream: Stream[int] = bridge.stream(
        produce, transform=lambda v: v, map_error=lambda e: e, buffer=1
    )
    assert await stream.receive() == 1
    await trio.sleep(0.02)  # the pump has produced another and waits for a credit
    await stream.aclose()
    await until(lambda: bridge.in_flight == 0)


def test_a_bridge_left_open_closes_with_its_trio_run(caplog: pytest.LogCaptureFixture) -> None:
    bridge = AsyncioBridge()
    counter = 0

    async def tick() -> int:
        nonlocal counter
        counter += 1
        await asyncio.sleep(0.01)
        return counter

    async def leave_a_stream_open() -> None:
        bridge.start()
        stream = bridge.stream(tick, transform=lambda v: v, map_error=lambda e: e)
        assert await stream.receive() == 1
        # Not closed: the run ends with the stream's task still watching.

    with caplog.at_level(logging.WARNING, logger="vigil.ccxt"):
        trio.run(leave_a_stream_open)
    assert not bridge.running
    assert bridge.loop.is_closed()
    assert bridge.in_flight == 0
    assert [r for r in caplog.records if r.name == "vigil.ccxt"] == []
    trio.run(bridge.aclose)  # idempotent, from any run


async def test_a_bridge_refuses_calls_from_another_trio_run(bridge: AsyncioBridge) -> None:
    async def other_run() -> None:
        await bridge.run(asyncio.sleep, 0)

    with pytest.raises(RuntimeError, match="belongs to the trio run that started it"):
        await trio.to_thread.run_sync(trio.run, other_run)
    assert await bridge.run(asyncio.sleep, 0, "still usable") == "still usable"


async def test_other_threads_reach_the_loop_with_call_soon_threadsafe(
    bridge: AsyncioBridge,
) -> None:
    # What asyncio's default executor (aiohttp's DNS lookups) does: the loop's wake-up byte
    # makes its selector readable, which wakes the pump waiting on trio's side.
    async def from_a_thread() -> str:
        future = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        threading.Timer(0.02, loop.call_soon_threadsafe, (future.set_result, "woken")).start()
        return await future

    with trio.fail_after(5):
        assert await bridge.run(from_a_thread) == "woken"


async def test_work_added_on_trios_thread_outside_a_step_still_runs(
    bridge: AsyncioBridge,
) -> None:
    # A callback put on the loop from trio's thread between steps, with nothing to wake the
    # pump (as a finalizer run by the garbage collector would): trio's next wait for I/O
    # finds it, instead of the pump sleeping on an idle selector for ever.
    future, watch = await _pending_watch(bridge)
    results: list[str] = []

    async def wait_for_it() -> None:
        results.append(await bridge.run(watch))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_it)
            await trio.testing.wait_all_tasks_blocked()  # the pump waits on the selector
            bridge.loop.call_soon(future.set_result, "ran")
    assert results == ["ran"]


async def test_calls_still_reach_the_loop_after_trio_dropped_the_hook(
    bridge: AsyncioBridge, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Calls submitted while the pump waits go to the loop from the instrument hook; trio
    # drops an instrument that raises, and the calls must then wake the pump instead.
    def broken(timeout: float) -> None:
        raise RuntimeError("hook failed")

    monkeypatch.setattr(bridge, "_before_io_wait", broken)
    with caplog.at_level(logging.ERROR):
        await trio.testing.wait_all_tasks_blocked()  # the pump waits; trio drops the hook
    monkeypatch.undo()
    for _ in range(3):
        assert await bridge.run(asyncio.sleep, 0, "still") == "still"


async def test_receive_nowait_takes_the_results_that_have_arrived(bridge: AsyncioBridge) -> None:
    values = [1, 2, 3]

    async def produce() -> int:
        if not values:
            await _never()
        return values.pop(0)

    async with bridge.stream(produce, transform=lambda v: v, map_error=lambda e: e) as stream:
        assert await stream.receive() == 1
        await trio.testing.wait_all_tasks_blocked()  # the pump has delivered all it had
        assert [stream.receive_nowait(), stream.receive_nowait()] == [2, 3]
        with pytest.raises(trio.WouldBlock):
            stream.receive_nowait()


async def test_the_loop_exception_handler_logs_scrubbed_text(
    bridge: AsyncioBridge, caplog: pytest.LogCaptureFixture
) -> None:
    bridge.scrubbers.append(lambda text: text.replace("s3cr3t", "***"))

    async def report() -> None:
        asyncio.get_running_loop().call_exception_handler(
            {"message": "a task failed with s3cr3t", "exception": ValueError("url?k=s3cr3t")}
        )

    with caplog.at_level(logging.ERROR, logger="vigil.ccxt"):
        await bridge.run(report)
    [record] = [r for r in caplog.records if r.name == "vigil.ccxt"]
    assert "s3cr3t" not in record.getMessage()
    assert "ValueError" in record.getMessage()
    assert record.exc_info is None
    gc.collect()


async def test_the_shared_bridge_is_reference_counted() -> None:
    a = acquire_shared_bridge()
    b = acquire_shared_bridge()
    assert a is b
    assert a.running
    await release_shared_bridge(a)
    assert b.running
    await release_shared_bridge(b)
    assert not b.running
    c = acquire_shared_bridge()
    assert c is not a
    assert c.running
    await release_shared_bridge(c)
