"""Every knob of the service, read from `PETSEG_*` environment variables (docs/configuration.md)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# The released model ships inside the repository, next to the package: <repo>/models/pet-unet.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "pet-unet"


class ModelDirError(Exception):
    """The model directory is missing or is not a SavedModel export."""


def resolve_model_version_dir(path: Path) -> Path:
    """Return the SavedModel directory for `path`: itself if it is one, else its highest numeric version.

    This mirrors TensorFlow Serving's base-path convention, so one directory can hold several exports
    and the newest wins without reconfiguring the service.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelDirError(f"{path}: directory does not exist")
    if (path / "saved_model.pb").is_file():
        return path
    versions = [
        child
        for child in path.iterdir()
        if child.is_dir() and child.name.isdigit() and (child / "saved_model.pb").is_file()
    ]
    if not versions:
        raise ModelDirError(f"{path}: no saved_model.pb, and no numeric version subdirectory containing one")
    return max(versions, key=lambda child: int(child.name))


ENV_PREFIX = "PETSEG_"
# Read by docker-compose.yml on the host (image, ports, replicas, model mount), never by the service.
COMPOSE_VARIABLES = frozenset(
    {
        "PETSEG_IMAGE",
        "PETSEG_IMAGE_CPU",
        "PETSEG_PUBLISH_PORT",
        "PETSEG_REPLICAS",
        "PETSEG_MODELS_SOURCE",
        "PETSEG_MEMORY_LIMIT",
        "PETSEG_MEMORY_LIMIT_GPU",
    }
)


def usable_cores() -> int:
    """Cores this process may run on (a cpuset narrows it; a CFS quota, as in Kubernetes, does not)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Service configuration; each field is `PETSEG_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, protected_namespaces=(), extra="ignore")

    host: str = Field(
        "127.0.0.1", description="Address `petseg serve` listens on (0.0.0.0: every interface)."
    )
    port: int = Field(
        8000, ge=0, le=65535, description="TCP port `petseg serve` listens on (0: any free port)."
    )
    drain_timeout_seconds: int = Field(
        10,
        ge=0,
        description="On SIGTERM, how long `petseg serve` lets requests in flight finish before closing them.",
    )
    model_dir: Path = Field(
        DEFAULT_MODEL_DIR,
        description="SavedModel version directory, or a base of numeric versions (highest wins).",
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    max_pixels: int = Field(
        40_000_000, gt=0, description="Largest photo (width x height) decoded; guards decompression bombs."
    )
    min_pet_fraction: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Smallest share of the photo a connected pet region must cover to count as a pet in "
        "the JSON's `pets` (smaller ones are specks).",
    )
    max_files_per_request: int = Field(
        16, gt=0, description="Most photos in one /segment/batch or /v2 infer request."
    )
    max_batch_size: int = Field(
        0,
        ge=0,
        description="Most photos the model sees in one forward pass; 0: the backend's choice "
        "(OpenVINO: 2 per stream, TensorFlow: 16).",
    )
    max_batch_wait_ms: float = Field(
        5.0,
        ge=0,
        description="Longest a forming batch waits for photos still being decoded; none waiting: no wait.",
    )
    queue_capacity: int = Field(
        64, gt=0, description="Photos waiting for the model beyond which requests get 503 + Retry-After."
    )
    max_decoding: int = Field(
        default_factory=lambda: 2 * usable_cores(),
        gt=0,
        description="Requests reading and decoding their photos at once (default: 2 per core).",
    )
    max_decoding_waiting: int = Field(
        64,
        ge=0,
        description="Requests waiting, body unread, for a decoding slot; beyond that 503 + Retry-After.",
    )
    retry_after_seconds: int = Field(
        1, ge=0, description="Retry-After (seconds) sent with every 503: overloaded, warming up, stopping."
    )
    api_key: SecretStr | None = Field(
        None, description="If set, /segment requires it in the X-API-Key header. Ops endpoints stay open."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Least severe log line printed: critical, error, warning, info or debug."
    )
    imaging_threads: int = Field(
        0, ge=0, description="Threads decoding uploads and rendering results at once (0: one per core)."
    )
    tf_intra_op_threads: int = Field(0, ge=0, description="TensorFlow intra-op threads (0: one per core).")
    tf_inter_op_threads: int = Field(0, ge=0, description="TensorFlow inter-op threads (0: TF decides).")
    model_streams: int = Field(
        0,
        ge=0,
        description="OpenVINO: batches the model runs at once, each on its own stream (a share of the "
        "cores) while another runs, on every core when alone; 1: one at a time; 0: 2 with 2+ cores.",
    )
    backend: Literal["auto", "tensorflow", "openvino"] = Field(
        "auto",
        description="Inference runtime; auto: TensorFlow when a GPU is visible, else OpenVINO if installed.",
    )
    backend_check_tolerance: float = Field(
        1e-4,
        ge=0,
        description="Largest absolute difference between OpenVINO and TensorFlow outputs on the startup "
        "check; beyond it the service refuses to start.",
    )
    gpu_memory_growth: bool = Field(
        True, description="Allocate GPU memory as needed instead of all of it up front."
    )

    @property
    def imaging_thread_count(self) -> int:
        """`imaging_threads`, with 0 resolved to the cores this process may run on."""
        return self.imaging_threads or usable_cores()

    @cached_property
    def model_version_dir(self) -> Path:
        """The concrete SavedModel directory that `model_dir` points at (raises ModelDirError)."""
        return resolve_model_version_dir(self.model_dir)


def setting_names() -> dict[str, str]:
    """Every environment variable the service reads, mapped to its Settings field."""
    return {f"{ENV_PREFIX}{name.upper()}": name for name in Settings.model_fields}


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per `PETSEG_*` variable that no setting reads (a typo, or a retired name), with a hint."""
    environ = os.environ if environ is None else environ
    known = setting_names()
    lines = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in COMPOSE_VARIABLES:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sorted(known))}"
        lines.append(f"{name} is not a PetSeg setting and is ignored{hint}")
    return lines


def describe_invalid(error: ValidationError) -> str:
    """A ValidationError from Settings as one line naming each bad variable, its value and the rule."""
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        value = item.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        problems.append(f"{ENV_PREFIX}{field.upper()}{shown}: {item['msg']}")
    return "invalid setting " + "; ".join(problems)
