"""The Open Inference Protocol's (KServe v2) REST tensor format: inference requests in, responses out.

Pure functions over bytes and numpy arrays; no HTTP framework and no model. A request is a JSON
header optionally followed by raw tensor bytes (the `binary_tensor_data` extension, which is what
`tritonclient.http` sends by default): the `Inference-Header-Content-Length` header says where the
JSON ends, and each binary input's `binary_data_size` parameter says how many bytes it takes, in
input order. Responses are built the same way.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_EXTENSION = "binary_tensor_data"

# The protocol's datatypes that have a fixed-size numpy equivalent. BYTES (length-prefixed strings)
# and BF16 (no numpy dtype) are left out: no PetSeg tensor uses them.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_DATATYPE_OF = {dtype: name for name, dtype in DATATYPES.items()}


class ProtocolError(ValueError):
    """A request that breaks the protocol or the model's tensors; the message says how (HTTP 400)."""


class BodyTooLarge(ProtocolError):
    """A compressed body that inflates past the size limit (HTTP 413)."""


class UnsupportedEncoding(ProtocolError):
    """A Content-Encoding this server does not decode (HTTP 415)."""


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the protocol's metadata states it; -1 in `shape` means any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )


@dataclass(frozen=True)
class InferRequest:
    """A decoded request: its id, each input as an array, and the outputs wanted (name → as binary)."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: dict[str, bool]


# --- the request's JSON header, as the protocol defines it -----------------------------------------

_Size = Annotated[int, Field(strict=True, ge=0)]


class _Parameters(BaseModel):
    # Parameters are open-ended in the protocol; the ones not named here are accepted and ignored.
    model_config = ConfigDict(extra="allow")
    shared_memory_region: Any = None


class _InputParameters(_Parameters):
    binary_data_size: _Size | None = None


class _OutputParameters(_Parameters):
    binary_data: StrictBool | None = None
    classification: Any = None


class _RequestParameters(_Parameters):
    binary_data_output: StrictBool = False


class _Input(BaseModel):
    name: str
    shape: list[_Size]
    datatype: str
    parameters: _InputParameters = Field(default_factory=_InputParameters)
    data: list[Any] | None = None


class _Output(BaseModel):
    name: str
    parameters: _OutputParameters = Field(default_factory=_OutputParameters)


class _Request(BaseModel):
    id: str | None = None
    parameters: _RequestParameters = Field(default_factory=_RequestParameters)
    inputs: list[_Input] = Field(min_length=1)
    outputs: list[_Output] | None = None


def parse_infer_request(
    body: bytes, header_length: str | None, inputs: Sequence[TensorSpec], outputs: Sequence[str]
) -> InferRequest:
    """Decode an inference request for a model with these `inputs` and `outputs`; raise ProtocolError.

    `header_length` is the Inference-Header-Content-Length header (None: the body is all JSON).
    Every input of the model must be given once, with its datatype and a shape its spec accepts,
    as JSON `data` (flat row-major, or nested) or as `binary_data_size` bytes after the header.
    """
    json_part, binary_part = _split_body(body, header_length)
    try:
        request = _Request.model_validate_json(json_part)
    except ValidationError as exc:
        raise ProtocolError(f"malformed inference request: {_first_error(exc)}") from None

    specs = {spec.name: spec for spec in inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        spec = specs.get(tensor.name)
        if spec is None:
            raise ProtocolError(f"unexpected input '{tensor.name}'; the model's inputs are {sorted(specs)}")
        if tensor.name in arrays:
            raise ProtocolError(f"input '{tensor.name}' is given more than once")
        _check_tensor(tensor, spec)
        size = tensor.parameters.binary_data_size
        if tensor.parameters.shared_memory_region is not None:
            raise ProtocolError("shared memory inputs are not supported; send the data in the request")
        if size is not None and tensor.data is not None:
            raise ProtocolError(f"input '{tensor.name}' has both JSON data and binary_data_size")
        if size is not None:
            if offset + size > len(binary_part):
                raise ProtocolError(
                    f"input '{tensor.name}' declares {size} binary bytes but only "
                    f"{len(binary_part) - offset} follow the JSON header"
                )
            arrays[tensor.name] = _from_binary(tensor, binary_part[offset : offset + size])
            offset += size
        elif tensor.data is not None:
            arrays[tensor.name] = _from_json(tensor)
        else:
            raise ProtocolError(f"input '{tensor.name}' has neither data nor binary_data_size")
    if offset != len(binary_part):
        raise ProtocolError(
            f"{len(binary_part)} binary bytes follow the JSON header but the inputs declare {offset}"
        )
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise ProtocolError(f"missing input(s) {missing}")
    return InferRequest(id=request.id, inputs=arrays, outputs=_requested_outputs(request, outputs))


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[str, np.ndarray, bool]],
) -> tuple[bytes, int | None]:
    """The response body for (name, array, as binary) outputs, and the JSON header's length when
    binary tensors follow it (the value of Inference-Header-Content-Length; None for all-JSON)."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array, binary in outputs:
        datatype = _DATATYPE_OF.get(array.dtype)
        if datatype is None:
            raise TypeError(f"output '{name}' has dtype {array.dtype}, which has no protocol datatype")
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            # The protocol's binary tensors are little-endian and row-major.
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        header["id"] = request_id
    header["outputs"] = tensors
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return encoded, None
    return b"".join([encoded, *blobs]), len(encoded)


def decode_content(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body without its Content-Encoding (gzip or deflate, as tritonclient can send), at most
    `max_bytes` once inflated, so a small compressed body cannot expand without bound."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise UnsupportedEncoding(f"Content-Encoding '{encoding}' is not supported; use gzip or deflate")
    inflater = zlib.decompressobj(wbits)
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise ProtocolError(f"body is not valid {encoding} data ({exc})") from None
    if len(inflated) > max_bytes:
        raise BodyTooLarge(f"{encoding} body inflates past the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise ProtocolError(f"{encoding} body is truncated")
    return inflated


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    value = header_length.strip()
    if not value.isdigit() or not 0 < int(value) <= len(body):
        raise ProtocolError(
            f"{HEADER_LENGTH} must be a byte count between 1 and the body's {len(body)} bytes, "
            f"not '{header_length}'"
        )
    return body[: int(value)], body[int(value) :]


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def _check_tensor(tensor: _Input, spec: TensorSpec) -> None:
    if tensor.datatype != spec.datatype:
        raise ProtocolError(
            f"input '{tensor.name}' has datatype {tensor.datatype}, the model expects {spec.datatype}"
        )
    if not spec.accepts_shape(tensor.shape):
        raise ProtocolError(
            f"input '{tensor.name}' has shape {tensor.shape}, the model expects {list(spec.shape)} "
            "(-1: any size)"
        )


def _from_binary(tensor: _Input, raw: bytes) -> np.ndarray:
    dtype = DATATYPES[tensor.datatype]
    expected = math.prod(tensor.shape) * dtype.itemsize
    if len(raw) != expected:
        raise ProtocolError(
            f"input '{tensor.name}' has binary_data_size {len(raw)}, but {tensor.datatype} "
            f"{tensor.shape} is {expected} bytes"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(tensor.shape)


def _from_json(tensor: _Input) -> np.ndarray:
    """JSON data, flat in row-major order or nested (any regular nesting), as the declared tensor."""
    dtype = DATATYPES[tensor.datatype]
    count = math.prod(tensor.shape)
    try:
        values = np.asarray(tensor.data)
    except ValueError:  # ragged nesting
        raise ProtocolError(f"input '{tensor.name}' data is nested unevenly") from None
    if values.size != count:
        raise ProtocolError(
            f"input '{tensor.name}' has {values.size} values, but shape {tensor.shape} needs {count}"
        )
    if count == 0:
        return np.zeros(tensor.shape, dtype)
    if dtype.kind == "b":
        fits = values.dtype.kind == "b"
    elif dtype.kind in "iu":
        limits = np.iinfo(dtype)
        fits = values.dtype.kind in "iu" and limits.min <= values.min() and values.max() <= limits.max
    else:
        fits = values.dtype.kind in "iuf"
    if not fits:
        raise ProtocolError(f"input '{tensor.name}' data must all be {tensor.datatype} values")
    return values.astype(dtype).reshape(tensor.shape)


def _requested_outputs(request: _Request, outputs: Sequence[str]) -> dict[str, bool]:
    default_binary = request.parameters.binary_data_output
    if not request.outputs:  # absent (or empty): every output, as the protocol says
        return dict.fromkeys(outputs, default_binary)
    wanted: dict[str, bool] = {}
    for output in request.outputs:
        if output.name not in outputs:
            raise ProtocolError(f"unexpected output '{output.name}'; the model's outputs are {list(outputs)}")
        if output.name in wanted:
            raise ProtocolError(f"output '{output.name}' is requested more than once")
        if output.parameters.shared_memory_region is not None:
            raise ProtocolError("shared memory outputs are not supported")
        if output.parameters.classification is not None:
            raise ProtocolError("the classification extension is not supported")
        binary = output.parameters.binary_data
        wanted[output.name] = default_binary if binary is None else binary
    return wanted
