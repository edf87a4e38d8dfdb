"""The baseline: the same SavedModel behind the smallest FastAPI endpoint, the way tutorials write it.

A plain `def` handler (FastAPI runs it in its thread pool), Pillow decode of the full photo, one
inference per request (no batching), probabilities upsampled to the photo's size, default PNG settings.
Run: NAIVE_MODEL_DIR=models/pet-unet/2 uvicorn bench.naive_server:app
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import Response
from PIL import Image

MODEL_DIR = Path(os.environ["NAIVE_MODEL_DIR"])
SIZE = int(json.loads((MODEL_DIR / "metadata.json").read_text())["input_size"])
model = tf.saved_model.load(str(MODEL_DIR))
serve = model.signatures["serving_default"]
serve(images=tf.zeros([1, SIZE, SIZE, 3], tf.uint8))

app = FastAPI()


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/segment")
def segment(file: UploadFile = File(...)) -> Response:
    image = Image.open(file.file).convert("RGB")
    width, height = image.size
    batch = np.asarray(image.resize((SIZE, SIZE)))[np.newaxis]
    probabilities = serve(images=tf.constant(batch))["probabilities"]
    labels = tf.argmax(tf.image.resize(probabilities, (height, width)), axis=-1)[0]
    mask = Image.fromarray(labels.numpy().astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")
