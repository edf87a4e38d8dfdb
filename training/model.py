"""The U-Net: ImageNet MobileNetV2 encoder tapped at the seed's layers, transposed-convolution decoder.

With `heads="species-breed"` the same encoder also feeds a small classification head (global average
pooling -> dropout -> dense 2 and dense 37) on its deepest feature, trained jointly with the masks.
The model returns a dict of logits keyed SEGMENTATION (and SPECIES, BREED with the heads).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

import petseg_contract as contract
from training import BREED, NUM_CLASSES, SEGMENTATION, SPECIES

# The seed's skip taps, from 1/2 down to 1/32 of the input size.
SKIP_LAYERS = (
    "block_1_expand_relu",  # 64x64 at 128 px
    "block_3_expand_relu",  # 32x32
    "block_6_expand_relu",  # 16x16
    "block_13_expand_relu",  # 8x8
    "block_16_project",  # 4x4
)
# MobileNetV2's last feature (1280 channels at 1/32): what its own ImageNet classifier reads, so the
# richest summary of the photo the encoder has for species and breed.
HEAD_FEATURE_LAYER = "out_relu"
DECODER_FILTERS = (512, 256, 128, 64)
LIGHT_DECODER_CHANNELS = 96
ENCODER_NAME = "encoder"
HEADS = ("none", "species-breed")
DECODERS = ("pix2pix", "light")
# Keras output key -> the exported signature's output name (petseg_contract).
CONTRACT_OUTPUTS = {
    SEGMENTATION: contract.OUTPUT_NAME,
    SPECIES: contract.SPECIES_OUTPUT,
    BREED: contract.BREED_OUTPUT,
}


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


def conv_bn_relu(x, layer: layers.Layer, name: str):
    """`layer` (a convolution without bias) -> batch norm -> ReLU."""
    x = layer(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def pix2pix_decoder(skips: list, num_classes: int, scale: float = 1.0):
    """The seed's decoder: 3x3 transposed convolutions (512/256/128/64) on concatenated skips."""
    x = skips[-1]
    for i, (filters, skip) in enumerate(zip(DECODER_FILTERS, reversed(skips[:-1]), strict=True)):
        x = upsample_block(max(8, int(filters * scale)), name=f"up{i + 1}")(x)
        x = layers.Concatenate(name=f"skip{i + 1}")([x, skip])
    # float32 even under a mixed-precision policy: softmax and loss need its range and precision.
    return layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same", name="logits", dtype="float32")(
        x
    )


def light_decoder(skips: list, num_classes: int, scale: float = 1.0, fine_channels: int | None = None):
    """A light U-Net decoder (FPN-like): about a third of the seed's decoder's compute at the same size.

    Every skip is reduced by a 1x1 convolution to 96 channels; from the deepest up, the running
    feature is upsampled bilinearly x2, added to the next reduced skip and refined by one
    depthwise-separable 3x3. Logits come at 1/2 of the input and are upsampled bilinearly to it.
    Adding (not concatenating) keeps the 1/2-resolution level, the costliest, at 96 channels.

    `fine_channels` narrows that 1/2-resolution level: the running feature is projected to it (1x1, at
    1/4 resolution, where it is cheap) before the last upsampling, and the finest skip is reduced to
    it. At 224 px and 96 channels that level alone costs about as much as the whole encoder.
    """
    channels = max(8, int(LIGHT_DECODER_CHANNELS * scale))
    depth = len(skips)
    x = conv_bn_relu(skips[-1], layers.Conv2D(channels, 1, use_bias=False, name="reduce5"), "reduce5")
    for level, skip in zip(range(depth - 1, 0, -1), reversed(skips[:-1]), strict=True):
        if level == 1 and fine_channels and fine_channels != channels:
            channels = max(8, int(fine_channels * scale))
            x = conv_bn_relu(x, layers.Conv2D(channels, 1, use_bias=False, name="narrow1"), "narrow1")
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}")(x)
        lateral = conv_bn_relu(
            skip, layers.Conv2D(channels, 1, use_bias=False, name=f"reduce{level}"), f"reduce{level}"
        )
        x = layers.Add(name=f"merge{level}")([x, lateral])
        x = conv_bn_relu(
            x,
            layers.SeparableConv2D(channels, 3, padding="same", use_bias=False, name=f"refine{level}"),
            f"refine{level}",
        )
    x = layers.Conv2D(num_classes, 1, name="class_conv", dtype="float32")(x)
    return layers.UpSampling2D(2, interpolation="bilinear", name="logits", dtype="float32")(x)


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


def build_encoder(
    input_size: int, encoder_weights: str | None, alpha: float = 1.0, head_feature: bool = False
) -> keras.Model:
    """MobileNetV2 feature extractor returning the five skip tensors (and, with `head_feature`, a 6th:
    the deepest feature, for the classification heads)."""
    weights = resolve_encoder_weights(encoder_weights)
    base = keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3),
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        alpha=alpha,
    )
    if weights not in (None, "imagenet"):
        base.load_weights(weights)
    names = SKIP_LAYERS + ((HEAD_FEATURE_LAYER,) if head_feature else ())
    outputs = [base.get_layer(n).output for n in names]
    return keras.Model(base.input, outputs, name=ENCODER_NAME)


def classification_heads(feature, dropout: float = 0.2) -> dict:
    """Species (2) and breed (37) logits of the whole photo from one encoder feature map."""
    x = layers.GlobalAveragePooling2D(name="head_pool")(feature)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return {
        SPECIES: layers.Dense(len(contract.SPECIES_NAMES), name="species_logits", dtype="float32")(x),
        BREED: layers.Dense(len(contract.BREEDS), name="breed_logits", dtype="float32")(x),
    }


def build_unet(
    input_size: int = 128,
    num_classes: int = NUM_CLASSES,
    encoder_weights: str | None = None,
    alpha: float = 1.0,
    decoder_scale: float = 1.0,
    heads: str = "species-breed",
    decoder: str = "pix2pix",
    head_dropout: float = 0.2,
    fine_channels: int | None = None,
) -> keras.Model:
    """U-Net taking float RGB in [0, 255] and returning a dict of logits.

    SEGMENTATION: per-pixel class logits [N, S, S, classes]; with `heads="species-breed"` also
    SPECIES [N, 2] and BREED [N, 37] logits. The [-1, 1] scaling MobileNetV2 expects lives inside the
    model (the seed fed [0, 1]: a bug), so training, evaluation and the exported SavedModel cannot
    disagree about it. `decoder` is "pix2pix" (the seed's) or "light". `alpha` and `decoder_scale`
    shrink the network for tests; the release model uses 1.0 for both. `fine_channels` narrows the light
    decoder's 1/2-resolution level (None: as wide as the others).
    """
    if heads not in HEADS:
        raise ValueError(f"heads must be one of {HEADS}, not {heads!r}")
    with_heads = heads == "species-breed"
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    encoder = build_encoder(input_size, encoder_weights, alpha, head_feature=with_heads)
    encoder.trainable = False
    # Keras 3 does not keep this training=False once the outer model is called in training mode, so
    # set_encoder_trainable is what keeps the encoder's batch norm in inference mode when fine-tuning.
    features = encoder(x, training=False)
    skips = list(features[: len(SKIP_LAYERS)])
    decoders = {"pix2pix": pix2pix_decoder, "light": light_decoder}
    if decoder not in decoders:
        raise ValueError(f"decoder must be one of {tuple(decoders)}, not {decoder!r}")
    if decoder == "light":
        segmentation = light_decoder(skips, num_classes, decoder_scale, fine_channels)
    else:
        segmentation = pix2pix_decoder(skips, num_classes, decoder_scale)
    outputs = {SEGMENTATION: segmentation}
    if with_heads:
        outputs.update(classification_heads(features[-1], head_dropout))
    return keras.Model(inputs, outputs, name="pet_unet")


def has_heads(model: keras.Model) -> bool:
    """Whether the model also predicts species and breed."""
    return isinstance(model.output, dict) and SPECIES in model.output


def model_from_config(cfg, encoder_weights: str | None) -> keras.Model:
    """The network a TrainConfig describes, its encoder initialised from `encoder_weights` (training
    passes the config's; an export passes None, as the run's checkpoint replaces every weight)."""
    return build_unet(
        cfg.input_size,
        encoder_weights=encoder_weights,
        alpha=cfg.alpha,
        decoder_scale=cfg.decoder_scale,
        heads=cfg.heads,
        decoder=cfg.decoder,
        head_dropout=cfg.head_dropout,
        fine_channels=cfg.fine_channels,
    )


def predict_outputs(model: keras.Model, images, flip_tta: bool = False, class_bias=None) -> dict:
    """Softmax probabilities keyed by the contract's output names (probabilities, and species/breed).

    With `flip_tta`, each is averaged with that of the mirrored photo (test-time flip); the per-pixel
    probabilities of the mirrored photo are mirrored back first. `class_bias` (one number per pixel
    class, e.g. chosen on validation by training.calibrate) is added to the per-pixel logits before
    the softmax: a prior shift that moves the argmax the service takes, at no cost.
    """
    import tensorflow as tf

    def softmax(key, logits):
        if key == SEGMENTATION and class_bias is not None:
            logits = logits + tf.constant(class_bias, logits.dtype)
        return tf.nn.softmax(logits, axis=-1)

    outputs = model(images, training=False)
    probs = {CONTRACT_OUTPUTS[k]: softmax(k, v) for k, v in outputs.items()}
    if flip_tta:
        mirrored = model(tf.reverse(images, axis=[2]), training=False)
        for key, logits in mirrored.items():
            p = softmax(key, logits)
            if key == SEGMENTATION:
                p = tf.reverse(p, axis=[2])
            probs[CONTRACT_OUTPUTS[key]] = 0.5 * (probs[CONTRACT_OUTPUTS[key]] + p)
    return probs


def load_release_weights(model: keras.Model, model_dir: str | Path) -> None:
    """Copy the weights of a SavedModel written by training.export (the Keras model sits under the
    root's `model`) into `model`, which must be built with the same architecture: how a released
    version, the only weights git keeps, becomes the starting point of a new run. Raises ValueError
    when a layer or variable does not match."""
    import tensorflow as tf

    root = tf.Module()
    root.model = model
    path = Path(model_dir) / "variables" / "variables"
    try:
        status = tf.train.Checkpoint(root).read(str(path))
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise ValueError(f"{model_dir}: its weights do not fit this architecture ({exc})") from exc


def set_encoder_trainable(model: keras.Model, trainable: bool, from_layer: str | None = None) -> None:
    """Freeze or unfreeze the encoder; with `from_layer`, only layers from that one on are unfrozen.

    The encoder's batch-norm layers stay frozen either way: a non-trainable BatchNormalization runs in
    inference mode in Keras 3, so fine-tuning keeps ImageNet's statistics (and its scale/offset) instead
    of normalising each augmented batch of 32 by its own statistics and dragging the moving averages
    along. Versions 2 and 3 fine-tuned without this (the outer training=True reached the nested encoder):
    their training loss jumped at the first fine-tuning epoch and validation fell.
    """
    encoder = model.get_layer(ENCODER_NAME)
    encoder.trainable = trainable
    if trainable and from_layer:
        names = [layer.name for layer in encoder.layers]
        start = names.index(from_layer)
        for layer in encoder.layers[:start]:
            layer.trainable = False
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
