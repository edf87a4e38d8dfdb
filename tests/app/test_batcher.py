"""The batcher on its own: no server, no TensorFlow, a plain numpy model that can be held mid-batch.

Holding the model's thread on an event makes each scenario deterministic: photos are queued while a
batch is provably running, and only then is the model let go.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from app.batcher import Batcher, Overloaded, ShuttingDown, Unavailable, WorkerDied
from petseg_contract import OUTPUT_NAME

GUARD_S = 60  # only a bound on a hang (a broken batcher); every scenario ends in a fraction of it


class NumpyModel:
    """Answers each photo with its own pixel values as 'probabilities' and records every batch's size."""

    def __init__(self, *, hold: bool = False) -> None:
        self.batches: list[int] = []
        self.entered = threading.Event()  # set once the model thread is inside a forward pass
        self.release = threading.Event()  # the forward pass returns only once this is set
        if not hold:
            self.release.set()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.batches.append(len(images))
        self.entered.set()
        self.release.wait(GUARD_S)
        return {OUTPUT_NAME: images.astype(np.float32)}

    async def running(self) -> None:
        """Wait until a batch is inside the model."""
        assert await asyncio.to_thread(self.entered.wait, GUARD_S)


def photo(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))


def test_queued_photos_form_batches_of_at_most_max_batch_size() -> None:
    model = NumpyModel(hold=True)

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=3, max_wait_s=0.0, capacity=16)
        batcher.start()
        first = asyncio.create_task(batcher.submit(photo(0)))
        await model.running()
        queued = [asyncio.create_task(batcher.submit(photo(value))) for value in range(1, 8)]
        await asyncio.sleep(0)
        assert batcher.depth == 7
        model.release.set()
        results = await asyncio.gather(first, *queued)
        await batcher.stop()
        assert model.batches == [1, 3, 3, 1]
        assert [r.batch_size for r in results] == [1, 3, 3, 3, 3, 3, 3, 1]
        assert [int(r.probabilities[0, 0, 0]) for r in results] == list(range(8))  # each its own answer

    run(scenario)


def test_a_forming_batch_waits_for_a_photo_still_arriving() -> None:
    model = NumpyModel()

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=16, max_wait_s=3600.0, capacity=16)
        batcher.start()
        with batcher.arriving():  # the second photo is "being decoded"
            first = asyncio.create_task(batcher.submit(photo(1)))
            for _ in range(20):  # let the worker take the first photo off the queue
                await asyncio.sleep(0)
            assert batcher.depth == 0 and model.batches == []  # taken, and held back for the second
        second = await batcher.submit(photo(2))
        assert (await first).batch_size == second.batch_size == 2
        await batcher.stop()
        assert model.batches == [2]

    run(scenario)


def test_a_lone_photo_does_not_wait_when_nothing_is_arriving() -> None:
    model = NumpyModel()

    async def scenario() -> None:
        # An hour's wait allowed, but nothing is being decoded: the photo must go to the model at once.
        batcher = Batcher(model, max_batch_size=16, max_wait_s=3600.0, capacity=16)
        batcher.start()
        result = await batcher.submit(photo(1))
        await batcher.stop()
        assert result.batch_size == 1 and model.batches == [1]

    run(scenario)


def test_a_full_queue_refuses_at_once_with_overloaded() -> None:
    model = NumpyModel(hold=True)

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=1, max_wait_s=0.0, capacity=2)
        batcher.start()
        running = asyncio.create_task(batcher.submit(photo(0)))
        await model.running()
        queued = [asyncio.create_task(batcher.submit(photo(value))) for value in (1, 2)]
        await asyncio.sleep(0)
        assert batcher.depth == 2
        with pytest.raises(Overloaded, match="too many photos waiting"):
            await batcher.submit(photo(3))
        model.release.set()
        results = await asyncio.gather(running, *queued)
        await batcher.stop()
        assert [int(r.probabilities[0, 0, 0]) for r in results] == [0, 1, 2]

    run(scenario)


def test_stop_answers_running_and_queued_photos_with_shutting_down() -> None:
    model = NumpyModel(hold=True)

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=1, max_wait_s=0.0, capacity=4)
        batcher.start()
        running = asyncio.create_task(batcher.submit(photo(0)))
        await model.running()
        queued = [asyncio.create_task(batcher.submit(photo(value))) for value in (1, 2)]
        await asyncio.sleep(0)
        stopping = asyncio.create_task(batcher.stop())
        outcomes = await asyncio.gather(running, *queued, return_exceptions=True)
        assert all(isinstance(outcome, ShuttingDown) for outcome in outcomes), outcomes
        assert not isinstance(outcomes[0], Overloaded)  # shutdown is not "too many photos waiting"
        model.release.set()  # the forward pass that was cut off ends; stop() waits for its thread
        await stopping
        with pytest.raises(ShuttingDown):
            await batcher.submit(photo(3))

    run(scenario)


def test_a_dead_worker_fails_waiting_and_new_photos_and_says_why() -> None:
    model = NumpyModel(hold=True)

    def broken_metrics(size: int, seconds: float) -> None:
        raise RuntimeError("metrics exploded")

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=1, max_wait_s=0.0, capacity=4, on_batch=broken_metrics)
        batcher.start()
        running = asyncio.create_task(batcher.submit(photo(0)))
        await model.running()
        queued = asyncio.create_task(batcher.submit(photo(1)))
        await asyncio.sleep(0)
        assert batcher.failure is None
        model.release.set()  # the batch returns, reporting it kills the worker
        outcomes = await asyncio.gather(running, queued, return_exceptions=True)
        assert all(isinstance(outcome, WorkerDied) for outcome in outcomes), outcomes
        assert batcher.failure is not None and "RuntimeError: metrics exploded" in batcher.failure
        with pytest.raises(WorkerDied, match="must be restarted"):
            await batcher.submit(photo(2))
        await batcher.stop()

    run(scenario)


def test_every_refusal_is_an_unavailable() -> None:
    # The HTTP layer answers any Unavailable with 503 + Retry-After (app/errors.py).
    assert all(issubclass(error, Unavailable) for error in (Overloaded, ShuttingDown, WorkerDied))


class CountingModel(NumpyModel):
    """A held model that also records how many forward passes were inside it at once."""

    def __init__(self) -> None:
        super().__init__(hold=True)
        self._lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.two_inside = threading.Event()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            if self.inside == 2:
                self.two_inside.set()
        try:
            return super().__call__(images)
        finally:
            with self._lock:
                self.inside -= 1


def test_with_two_streams_a_second_batch_runs_while_the_first_is_held() -> None:
    model = CountingModel()

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=16, max_wait_s=0.0, capacity=16, streams=2)
        batcher.start()
        first = asyncio.create_task(batcher.submit(photo(0)))
        await model.running()
        second = asyncio.create_task(batcher.submit(photo(1)))
        assert await asyncio.to_thread(model.two_inside.wait, GUARD_S)
        model.release.set()
        results = await asyncio.gather(first, second)
        await batcher.stop()
        assert model.most_inside == 2 and model.batches == [1, 1]
        assert [int(r.probabilities[0, 0, 0]) for r in results] == [0, 1]

    run(scenario)


def test_stop_with_two_streams_answers_both_running_batches_and_the_queue() -> None:
    model = CountingModel()

    async def scenario() -> None:
        batcher = Batcher(model, max_batch_size=1, max_wait_s=0.0, capacity=4, streams=2)
        batcher.start()
        running = [asyncio.create_task(batcher.submit(photo(value))) for value in (0, 1)]
        assert await asyncio.to_thread(model.two_inside.wait, GUARD_S)
        queued = asyncio.create_task(batcher.submit(photo(2)))
        await asyncio.sleep(0)
        stopping = asyncio.create_task(batcher.stop())
        outcomes = await asyncio.gather(*running, queued, return_exceptions=True)
        assert all(isinstance(outcome, ShuttingDown) for outcome in outcomes), outcomes
        model.release.set()
        await stopping

    run(scenario)


def test_streams_must_be_positive() -> None:
    with pytest.raises(ValueError, match="streams"):
        Batcher(NumpyModel(), max_batch_size=1, max_wait_s=0.0, capacity=1, streams=0)
