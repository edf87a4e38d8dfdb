"""Settings → a running SegmentationService: the model runtime, its batcher and the service, built once.

`app.main` (the HTTP service's lifespan) and `app.predict` (`petseg predict`) both start the service
through `running_service`, so which model runtime is loaded and how is decided here and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from anyio import to_thread

from app.batcher import Batcher
from app.service import SegmentationService
from app.settings import Settings

if TYPE_CHECKING:  # TensorFlow is heavy; it is imported when a service is built, not before
    from app.segmenter import Segmenter

# Lines TensorFlow's C++ side prints while it is being imported, before it has read TF_CPP_MIN_LOG_LEVEL
# (absl logging is not initialised yet), so that variable cannot hide them. Both are INFO-level notices.
_IMPORT_NOTICES = (
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
)


@contextlib.contextmanager
def _without_import_notices() -> Iterator[None]:
    """Capture the process's stderr (file descriptor 2) and give it back without TF's import notices.

    Only when TF_CPP_MIN_LOG_LEVEL asks for quiet (>= 1, INFO hidden); every other line is kept, in order.
    Turning oneDNN off (TF_ENABLE_ONEDNN_OPTS=0) would also hide the notice, but changes the numerics.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    if not (level.isdigit() and int(level) >= 1):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not any(notice in line for notice in _IMPORT_NOTICES)
            ]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def load_segmenter(settings: Settings) -> Segmenter:
    """Import and configure the model runtime, then load `settings.model_version_dir` (ModelDirError)."""
    # The only place the service imports TensorFlow: its C++ INFO lines stay hidden unless asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _without_import_notices():
        from app.segmenter import Segmenter, configure_tensorflow

    configure_tensorflow(settings)
    return Segmenter.load(settings.model_version_dir, settings)


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    on_batch: Callable[[int, float], None] | None = None,
) -> AsyncIterator[SegmentationService]:
    """Load the model (in a thread), start its batcher, yield the service; stop both on exit.

    `on_batch(size, seconds)` is told about every forward pass (metrics).
    """
    segmenter = await to_thread.run_sync(load_segmenter, settings)
    batcher = Batcher(
        segmenter.predict,
        max_batch_size=settings.max_batch_size or segmenter.batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000.0,
        capacity=settings.queue_capacity,
        on_batch=on_batch,
        streams=segmenter.streams,
    )
    service = SegmentationService(settings, segmenter, batcher)
    batcher.start()
    try:
        yield service
    finally:
        await batcher.stop()
        service.close()
