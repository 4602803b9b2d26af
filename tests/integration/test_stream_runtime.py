"""The one stream runtime against the real Kafka: batches, timers, outputs, and offsets
committed only after the handlers returned (a failed batch is delivered again)."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from stream.runtime import RuntimeOptions, StreamRuntime


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for v in values:
            await producer.send(topic, v, key=v[-1:])
        await producer.flush()
    finally:
        await producer.stop()


async def _run_until(runtime: StreamRuntime, done: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        stop.set()
        with contextlib.suppress(RuntimeError):
            await asyncio.wait_for(task, 30)


async def test_handlers_timers_and_outputs(kafka_admin, namespace: str) -> None:
    bootstrap = kafka_admin.bootstrap
    source, output = f"{namespace}.rt.in", f"{namespace}.rt.out"
    values = [f"v{i:04d}-{i % 4}".encode() for i in range(500)]
    runtime = StreamRuntime(bootstrap, RuntimeOptions(group_id=f"{namespace}.rt", batch_size=64))
    send = runtime.sender(output)
    seen: list[bytes] = []
    ticks = 0
    done = asyncio.Event()

    async def handle(batch: list[bytes]) -> None:
        assert len(batch) <= 64
        seen.extend(batch)
        for v in batch:
            await send(v[-1:], v.upper())
        if len(seen) >= len(values) and ticks >= 2:
            done.set()

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        if len(seen) >= len(values) and ticks >= 2:
            done.set()

    runtime.consume(source, handle)
    runtime.every(0.2, tick)
    run = asyncio.create_task(_run_until(runtime, done, 60))
    # The runtime creates its missing topics (inputs and outputs) with 4 partitions.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(100):
            if {source, output} <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
        described = await admin.describe_topics([source, output])
        assert [len(t["partitions"]) for t in described] == [4, 4]
    finally:
        await admin.close()
    await _produce(bootstrap, source, values)
    await run
    assert sorted(seen) == sorted(values)
    # Partition order is kept: values with the same key arrive in production order.
    for key in b"0123":
        same = [v for v in seen if v[-1] == key]
        assert same == sorted(same)
    out = await kafka_admin.consume_all(output, len(values), timeout=30)
    assert sorted(r.value for r in out) == sorted(v.upper() for v in values)


async def test_a_failed_batch_is_delivered_again(kafka_admin, namespace: str) -> None:
    bootstrap = kafka_admin.bootstrap
    source = f"{namespace}.rt.replay"
    values = [f"e{i:03d}".encode() for i in range(200)]
    await kafka_admin.create_topics([source], partitions=1)
    await _produce(bootstrap, source, values)
    group = RuntimeOptions(group_id=f"{namespace}.rt.replay", batch_size=50)

    stored: list[bytes] = []
    first = StreamRuntime(bootstrap, group)
    calls = 0

    async def crash_on_third(batch: list[bytes]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("database went away mid-batch")
        stored.extend(batch)

    first.consume(source, crash_on_third)
    try:
        await asyncio.wait_for(first.run(asyncio.Event()), 60)
    except RuntimeError as exc:
        assert "database went away" in str(exc)
    assert 0 < len(stored) < len(values) and stored == values[: len(stored)]

    second = StreamRuntime(bootstrap, group)
    done = asyncio.Event()

    async def store(batch: list[bytes]) -> None:
        stored.extend(batch)
        if len(stored) >= len(values):
            done.set()

    second.consume(source, store)
    await _run_until(second, done, 60)
    # Nothing lost, and the failed batch came again from its first value (no gap).
    assert stored == values


async def test_under_a_trickle_a_batch_fills_for_its_window(kafka_admin, namespace: str) -> None:
    """``batch_min_bytes``: the broker holds a fetch until that many bytes or the window, so
    a stream arriving in many small pieces reaches the handler as a few big batches (each
    batch is a PostgreSQL transaction and an offset commit; fuller batches cost the
    occupancy path ~6 % less CPU per event in `bench pipeline`)."""
    bootstrap = kafka_admin.bootstrap
    source = f"{namespace}.rt.trickle"
    await kafka_admin.create_topics([source], partitions=1)
    options = RuntimeOptions(
        group_id=f"{namespace}.rt.trickle", batch_window=3.0, batch_min_bytes=1 << 20
    )
    runtime = StreamRuntime(bootstrap, options)
    batches: list[tuple[float, int]] = []
    values = 0
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handle(batch: list[bytes]) -> None:
        nonlocal values
        batches.append((loop.time(), len(batch)))
        values += len(batch)
        if values >= 200:
            done.set()

    runtime.consume(source, handle)
    run = asyncio.create_task(_run_until(runtime, done, 60))
    # The consumer joins its group first; then 20 pieces of 10 values, 50 ms apart.
    await asyncio.sleep(2.0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        started = loop.time()
        for piece in range(20):
            for i in range(10):
                await producer.send(source, f"p{piece:02d}-{i}".encode())
            await producer.flush()
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    await run
    assert values == 200
    # One fetch may have been waiting when the first piece came: at most one small batch
    # before the rest arrives together, and no value waits much longer than the window.
    assert len(batches) <= 3, batches
    assert max(n for _, n in batches) >= 150, batches
    assert batches[-1][0] - started < options.batch_window + 5.0, batches
