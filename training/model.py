"""The U-Net: ImageNet MobileNetV2 encoder tapped at the seed's layers, transposed-convolution decoder."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from training import NUM_CLASSES

# The seed's skip taps, from 1/2 down to 1/32 of the input size.
SKIP_LAYERS = (
    "block_1_expand_relu",  # 64x64 at 128 px
    "block_3_expand_relu",  # 32x32
    "block_6_expand_relu",  # 16x16
    "block_13_expand_relu",  # 8x8
    "block_16_project",  # 4x4
)
DECODER_FILTERS = (512, 256, 128, 64)
ENCODER_NAME = "encoder"


def upsample_block(filters: int, name: str) -> keras.Sequential:
    """x2 upsampling: Conv2DTranspose -> batch norm -> ReLU (the seed's pix2pix `upsample`)."""
    return keras.Sequential(
        [
            layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
        ],
        name=name,
    )


def resolve_encoder_weights(encoder_weights: str | None) -> str | None:
    """`imagenet` (Keras download), a path to a .weights.h5 file, or None/"none" (random init)."""
    if encoder_weights in (None, "", "none"):
        return None
    if encoder_weights == "imagenet":
        return "imagenet"
    path = Path(encoder_weights)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    return str(path)


def build_encoder(input_size: int, encoder_weights: str | None, alpha: float = 1.0) -> keras.Model:
    """MobileNetV2 feature extractor returning the five skip tensors."""
    weights = resolve_encoder_weights(encoder_weights)
    base = keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3),
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        alpha=alpha,
    )
    if weights not in (None, "imagenet"):
        base.load_weights(weights)
    outputs = [base.get_layer(n).output for n in SKIP_LAYERS]
    return keras.Model(base.input, outputs, name=ENCODER_NAME)


def build_unet(
    input_size: int = 128,
    num_classes: int = NUM_CLASSES,
    encoder_weights: str | None = None,
    alpha: float = 1.0,
    decoder_scale: float = 1.0,
) -> keras.Model:
    """U-Net taking float RGB in [0, 255] and returning per-pixel class logits.

    The [-1, 1] scaling MobileNetV2 expects lives inside the model (the seed fed [0, 1]: a bug), so
    training, evaluation and the exported SavedModel cannot disagree about it. `alpha` and
    `decoder_scale` shrink the network for tests; the release model uses 1.0 for both.
    """
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    encoder = build_encoder(input_size, encoder_weights, alpha)
    encoder.trainable = False
    # training=False keeps the encoder's batch-norm statistics frozen, also after unfreezing its weights.
    skips = encoder(x, training=False)
    x = skips[-1]
    for i, (filters, skip) in enumerate(zip(DECODER_FILTERS, reversed(skips[:-1]), strict=True)):
        x = upsample_block(max(8, int(filters * decoder_scale)), name=f"up{i + 1}")(x)
        x = layers.Concatenate(name=f"skip{i + 1}")([x, skip])
    # float32 even under a mixed-precision policy: softmax and loss need its range and precision.
    logits = layers.Conv2DTranspose(
        num_classes, 3, strides=2, padding="same", name="logits", dtype="float32"
    )(x)
    return keras.Model(inputs, logits, name="pet_unet")


def predict_probabilities(model: keras.Model, images, flip_tta: bool = False):
    """Softmax probabilities; with `flip_tta`, averaged with those of the mirrored photo (test-time flip)."""
    import tensorflow as tf

    probs = tf.nn.softmax(model(images, training=False), axis=-1)
    if flip_tta:
        mirrored = tf.nn.softmax(model(tf.reverse(images, axis=[2]), training=False), axis=-1)
        probs = 0.5 * (probs + tf.reverse(mirrored, axis=[2]))
    return probs


def set_encoder_trainable(model: keras.Model, trainable: bool, from_layer: str | None = None) -> None:
    """Freeze or unfreeze the encoder; with `from_layer`, only layers from that one on are unfrozen."""
    encoder = model.get_layer(ENCODER_NAME)
    encoder.trainable = trainable
    if trainable and from_layer:
        names = [layer.name for layer in encoder.layers]
        start = names.index(from_layer)
        for layer in encoder.layers[:start]:
            layer.trainable = False
    # Batch norm stays in inference mode regardless: the encoder is always called with training=False.
