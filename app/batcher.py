"""Collects concurrent requests into model batches and runs them on one worker thread off the event loop."""

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


class Overloaded(Exception):
    """The queue is at capacity; the caller should retry later."""


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

    One worker thread runs the model: TensorFlow already spreads one batch over all cores, so a second
    concurrent batch would only compete for them, while the event loop keeps decoding and encoding
    other requests in the meantime.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], dict[str, np.ndarray]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        capacity: int,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._predict = predict
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=capacity)
        self._on_batch = on_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="petseg-model")
        self._worker: asyncio.Task[None] | None = None
        self._arriving = 0

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
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="petseg-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(Overloaded("service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, image: np.ndarray) -> BatchResult:
        """Queue one uint8 [S, S, 3] photo and wait for its outputs; raise Overloaded when full."""
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(image, future, time.perf_counter()))
        except asyncio.QueueFull:
            raise Overloaded(f"{self._queue.maxsize} photos already waiting") from None
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            batch = [p for p in batch if not p.future.done()]  # callers that went away
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._predict, np.stack([p.image for p in batch])
                )
            except Exception as exc:
                logger.exception("model inference failed for a batch of %d", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            inference_s = time.perf_counter() - started
            if self._on_batch is not None:
                self._on_batch(len(batch), inference_s)
            for index, pending in enumerate(batch):
                if not pending.future.done():
                    pending.future.set_result(
                        BatchResult(
                            outputs={name: values[index] for name, values in outputs.items()},
                            queued_s=started - pending.enqueued_at,
                            inference_s=inference_s,
                            batch_size=len(batch),
                        )
                    )

    async def _collect(self) -> list[_Pending]:
        batch = [await self._queue.get()]
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
