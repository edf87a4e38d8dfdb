"""Collects concurrent requests into model batches and runs them on one worker thread off the event loop.

Photos reach the batcher already decoded: decoding runs in the service's imaging threads
(`SegmentationService.segment`, inside `Batcher.arriving()`), so the model thread only ever runs the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from petseg_contract import OUTPUT_NAME

logger = logging.getLogger(__name__)


class Unavailable(Exception):
    """The batcher cannot segment this photo now (HTTP 503); the message says why, for people."""


class Overloaded(Unavailable):
    """The queue is at capacity; the caller should retry later."""


class ShuttingDown(Unavailable):
    """The service is stopping: queued photos, and the batch the model was running, are not answered."""


class WorkerDied(Unavailable):
    """The model worker stopped unexpectedly; nothing is segmented until the service restarts."""


@dataclass(frozen=True)
class BatchResult:
    """One photo's model outputs (by contract name) and what they cost."""

    outputs: dict[str, np.ndarray]
    queued_s: float
    inference_s: float
    batch_size: int

    @property
    def probabilities(self) -> np.ndarray:
        """float32 [S, S, C]: the segmentation output every model has."""
        return self.outputs[OUTPUT_NAME]


@dataclass
class _Pending:
    image: np.ndarray
    future: asyncio.Future[BatchResult]
    enqueued_at: float


class Batcher:
    """Queue of single photos → batches of at most `max_batch_size`, waiting at most `max_wait_s` to fill.

    `streams` workers run the model, each on its own thread with its own batch: with one, a batch is
    spread over every core (TensorFlow, OpenVINO's latency mode); with more, each batch runs on its own
    OpenVINO stream of fewer cores, and no worker waits for the others' threads. Decoding and rendering
    happen elsewhere, in the service's imaging threads, while the model runs.

    Every submitted photo gets an answer: its outputs, Overloaded (queue full), ShuttingDown (stop()
    was called) or WorkerDied (the worker task ended on its own; `failure` then says why).
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], dict[str, np.ndarray]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        capacity: int,
        on_batch: Callable[[int, float], None] | None = None,
        streams: int = 1,
    ) -> None:
        if streams < 1:
            raise ValueError("streams must be at least 1")
        self._predict = predict
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=capacity)
        self._on_batch = on_batch
        self._streams = streams
        self._executor = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="petseg-model")
        self._workers: list[asyncio.Task[None]] = []
        self._arriving = 0
        # The batches being formed or run, one per worker (stop() and a dead worker answer them too).
        self._running: dict[int, list[_Pending]] = {}
        self._stopping = False
        self._failure: str | None = None

    @property
    def failure(self) -> str | None:
        """Why the worker stopped on its own (the service cannot answer any more), or None while it runs."""
        return self._failure

    @property
    def max_batch_size(self) -> int:
        """The most photos in one forward pass."""
        return self._max_batch_size

    @property
    def depth(self) -> int:
        """Photos waiting for the model (not counting the batch running now)."""
        return self._queue.qsize()

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a photo on its way (being decoded): a forming batch waits for it, and only for such photos."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def start(self) -> None:
        """Start the worker tasks on the running event loop."""
        loop = asyncio.get_running_loop()
        for index in range(self._streams):
            worker = loop.create_task(self._run(index), name=f"petseg-batcher-{index}")
            worker.add_done_callback(self._worker_ended)
            self._workers.append(worker)

    async def stop(self) -> None:
        """Stop the workers and answer every photo not yet answered (queued or running) with ShuttingDown."""
        self._stopping = True
        for worker in self._workers:
            if not worker.done():  # a dead worker has nothing to cancel
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        self._fail_all(ShuttingDown("service is shutting down; retry on another instance or later"))
        # The model thread may still be inside a forward pass; wait for it without blocking the loop.
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def submit(self, image: np.ndarray) -> BatchResult:
        """Queue one uint8 [S, S, 3] photo and wait for its outputs; raise an Unavailable when it cannot."""
        if self._failure is not None:
            raise WorkerDied(self._died_message())
        if self._stopping:
            raise ShuttingDown("service is shutting down; retry on another instance or later")
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(image, future, time.perf_counter()))
        except asyncio.QueueFull:
            raise Overloaded(f"too many photos waiting ({self._queue.maxsize}); retry later") from None
        return await future

    def _worker_ended(self, worker: asyncio.Task[None]) -> None:
        """Done-callback of a worker task: an end that stop() did not ask for fails everything waiting.

        One dead worker stops the batcher: the others share its runtime, which may be what broke."""
        if self._stopping or self._failure is not None:
            return
        if worker.cancelled():
            self._failure = "the model worker was cancelled"
        elif (error := worker.exception()) is not None:
            self._failure = f"the model worker crashed ({type(error).__name__}: {error})"
            logger.error("model worker stopped; the service cannot segment any more", exc_info=error)
        else:
            self._failure = "the model worker ended"
        self._fail_all(WorkerDied(self._died_message()))

    def _died_message(self) -> str:
        return f"{self._failure}; the service must be restarted"

    def _fail_all(self, error: Unavailable) -> None:
        waiting = [pending for batch in self._running.values() for pending in batch]
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        self._running = {}
        for pending in waiting:
            if not pending.future.done():
                pending.future.set_exception(error)

    async def _run(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(index)
            batch = [p for p in batch if not p.future.done()]  # callers that went away
            if not batch:
                continue
            started = time.perf_counter()
            self._running[index] = batch
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._predict, np.stack([p.image for p in batch])
                )
            except Exception as exc:
                logger.exception("model inference failed for a batch of %d", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                self._running.pop(index, None)
                continue
            inference_s = time.perf_counter() - started
            if self._on_batch is not None:
                self._on_batch(len(batch), inference_s)
            for position, pending in enumerate(batch):
                if not pending.future.done():
                    pending.future.set_result(
                        BatchResult(
                            outputs={name: values[position] for name, values in outputs.items()},
                            queued_s=started - pending.enqueued_at,
                            inference_s=inference_s,
                            batch_size=len(batch),
                        )
                    )
            self._running.pop(index, None)

    async def _collect(self, index: int) -> list[_Pending]:
        # The forming batch is in `_running` from its first photo on, so that stop() or a worker's
        # death also answers photos already taken off the queue.
        batch: list[_Pending] = []
        self._running[index] = batch
        batch.append(await self._queue.get())
        deadline = time.perf_counter() + self._max_wait_s
        while len(batch) < self._max_batch_size:
            # Whatever queued up while the previous batch ran joins at once, without waiting.
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            # With no photo on its way, waiting would only add latency (a lone request at low load).
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self._arriving == 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch
