"""The U-Net has the seed's shape, scales its own input and learns on synthetic data; its optional
species/breed heads read the encoder's deepest feature."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from training import BREED, SEGMENTATION, SPECIES
from training.config import TrainConfig
from training.model import HEAD_FEATURE_LAYER, SKIP_LAYERS, build_unet, set_encoder_trainable
from training.train import compile_model

SHARED_WEIGHTS = Path(__file__).resolve().parents[3] / "shared/weights/mobilenet_v2_1.0_224_no_top.weights.h5"


def tiny(size=64, **kw):
    return build_unet(size, encoder_weights=None, alpha=0.35, decoder_scale=0.125, **kw)


def output_shapes(model, size=64):
    out = model(np.zeros((2, size, size, 3), np.float32))
    return {k: tuple(v.shape) for k, v in out.items()}


def test_output_is_logits_per_pixel_for_three_classes_and_of_species_and_breed():
    assert output_shapes(tiny(64)) == {SEGMENTATION: (2, 64, 64, 3), SPECIES: (2, 2), BREED: (2, 37)}


def test_a_model_without_heads_outputs_segmentation_only():
    assert output_shapes(tiny(64, heads="none")) == {SEGMENTATION: (2, 64, 64, 3)}


def test_light_decoder_returns_logits_at_the_input_size():
    assert output_shapes(tiny(96, decoder="light"), 96)[SEGMENTATION] == (2, 96, 96, 3)


def test_light_decoder_reduces_skips_to_96_channels_with_one_separable_conv_per_level():
    model = build_unet(128, encoder_weights=None, decoder="light", heads="none")
    separable = [layer for layer in model.layers if isinstance(layer, keras.layers.SeparableConv2D)]
    reductions = [
        layer for layer in model.layers if layer.name.startswith("reduce") and layer.name[6:].isdigit()
    ]
    assert len(separable) == len(SKIP_LAYERS) - 1 and all(layer.filters == 96 for layer in separable)
    assert len(reductions) == len(SKIP_LAYERS) and all(layer.kernel_size == (1, 1) for layer in reductions)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in model.layers)


def test_light_decoder_is_cheaper_than_the_seeds_at_the_same_size():
    def decoder_params(decoder):
        model = build_unet(128, encoder_weights=None, decoder=decoder, heads="none")
        return model.count_params() - model.get_layer("encoder").count_params()

    assert decoder_params("light") < 0.1 * decoder_params("pix2pix")


def test_fine_channels_narrow_only_the_half_resolution_level_and_cut_its_cost():
    def decoder_params(**kw):
        model = build_unet(128, encoder_weights=None, decoder="light", heads="none", **kw)
        return model, model.count_params() - model.get_layer("encoder").count_params()

    narrow, narrow_params = decoder_params(fine_channels=32)
    _, wide_params = decoder_params()
    separable = {
        layer.name: layer.filters
        for layer in narrow.layers
        if isinstance(layer, keras.layers.SeparableConv2D)
    }
    assert separable["refine1"] == 32 and {v for k, v in separable.items() if k != "refine1"} == {96}
    assert narrow_params < wide_params
    assert output_shapes(narrow, 128)[SEGMENTATION] == (2, 128, 128, 3)


def test_encoder_is_tapped_at_the_seed_layers():
    encoder = tiny(64, heads="none").get_layer("encoder")
    seed_taps = [
        "block_1_expand_relu",
        "block_3_expand_relu",
        "block_6_expand_relu",
        "block_13_expand_relu",
        "block_16_project",
    ]
    # Keras 3 names output tensors `keras_tensor_N`: compare the tensors themselves with each layer's output.
    assert len(encoder.outputs) == len(seed_taps)
    for name, tapped in zip(seed_taps, encoder.outputs, strict=True):
        assert tapped is encoder.get_layer(name).output, f"skip {name} is not tapped"
    assert [t.shape[1] for t in encoder.outputs] == [32, 16, 8, 4, 2]  # 1/2 down to 1/32 of 64 px


def test_heads_read_the_encoders_deepest_feature():
    encoder = tiny(64, heads="species-breed").get_layer("encoder")
    assert len(encoder.outputs) == len(SKIP_LAYERS) + 1
    for name, tapped in zip(SKIP_LAYERS, encoder.outputs, strict=False):
        assert tapped is encoder.get_layer(name).output, f"skip {name} is not tapped"
    assert encoder.outputs[-1] is encoder.get_layer(HEAD_FEATURE_LAYER).output
    assert encoder.outputs[-1].shape[-1] == 1280  # MobileNetV2's last feature, what its classifier reads


def test_encoder_starts_frozen_and_unfreezes_from_the_given_layer_on():
    model = tiny()
    encoder = model.get_layer("encoder")
    assert not encoder.trainable
    set_encoder_trainable(model, True, from_layer="block_13_expand")
    convolutions = [layer for layer in encoder.layers if layer.weights and not is_batch_norm(layer)]
    first = [layer.name for layer in convolutions].index("block_13_expand")
    unfrozen = [layer.name for layer in convolutions if layer.trainable]
    assert unfrozen == [layer.name for layer in convolutions[first:]]


def is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


@pytest.mark.parametrize("from_layer", [None, "block_13_expand"])
def test_fine_tuning_keeps_the_encoders_batch_norm_in_inference_mode(from_layer):
    # Momentum 0 makes any training-mode call overwrite the moving statistics with the batch's own.
    model = tiny()
    set_encoder_trainable(model, True, from_layer=from_layer)
    norms = [layer for layer in model.get_layer("encoder").layers if is_batch_norm(layer)]
    assert norms and not any(layer.trainable for layer in norms)
    for layer in norms:
        layer.momentum = 0.0
    before = [layer.moving_mean.numpy().copy() for layer in norms]
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3)).astype(np.float32)
    model(images, training=True)
    for layer, mean in zip(norms, before, strict=True):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), mean, err_msg=layer.name)
    # ...while the encoder's convolutions do train.
    assert any(
        layer.trainable_weights for layer in model.get_layer("encoder").layers if not is_batch_norm(layer)
    )


def test_an_encoder_weights_file_is_loaded_into_the_encoder(tmp_path):
    # A weights file of known values (a differently initialised MobileNetV2), so this runs without downloads.
    reference = keras.applications.MobileNetV2((64, 64, 3), include_top=False, weights=None, alpha=0.35)
    weights_file = tmp_path / "encoder.weights.h5"
    reference.save_weights(weights_file)
    model = build_unet(64, encoder_weights=str(weights_file), alpha=0.35, decoder_scale=0.125)
    encoder = model.get_layer("encoder")
    weighted = [layer for layer in encoder.layers if layer.weights]
    assert len(weighted) > 50  # every convolution and batch norm up to block_16_project
    for layer in weighted:
        for got, expected in zip(layer.weights, reference.get_layer(layer.name).weights, strict=True):
            np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=layer.name)
    # ...which a randomly initialised encoder does not already hold.
    random_conv1 = tiny(64).get_layer("encoder").get_layer("Conv1").kernel.numpy()
    assert not np.allclose(random_conv1, reference.get_layer("Conv1").kernel.numpy())


def test_normalisation_to_minus_one_one_is_inside_the_model():
    model = tiny()
    scale = model.get_layer("to_minus1_1")
    out = np.asarray(scale(np.array([[[[0.0, 127.5, 255.0]]]], np.float32)))
    np.testing.assert_allclose(out.ravel(), [-1.0, 0.0, 1.0], atol=1e-6)


def test_unknown_weights_path_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="encoder weights"):
        build_unet(64, encoder_weights="/nonexistent/weights.h5")


@pytest.mark.skipif(not SHARED_WEIGHTS.exists(), reason="shared ImageNet weights not present")
def test_shared_imagenet_weights_load_into_the_encoder():
    encoder = build_unet(128, encoder_weights=str(SHARED_WEIGHTS)).get_layer("encoder")
    reference = keras.applications.MobileNetV2(input_shape=(128, 128, 3), include_top=False, weights=None)
    random_kernel = reference.get_layer("Conv1").kernel.numpy()
    reference.load_weights(SHARED_WEIGHTS)
    for name in ("Conv1", "block_6_expand", "block_16_project"):
        np.testing.assert_array_equal(
            encoder.get_layer(name).kernel.numpy(), reference.get_layer(name).kernel.numpy()
        )
    assert not np.allclose(random_kernel, encoder.get_layer("Conv1").kernel.numpy())


def test_a_few_training_steps_lower_every_loss(synthetic_root):
    from training import data as pet_data

    source = pet_data.DirectorySource(synthetic_root)
    arrays = pet_data.load_arrays(source, "train", 64, 0, 0.1)
    keras.utils.set_random_seed(0)
    model = tiny(64)
    compile_model(model, TrainConfig(data_dir="", run_dir="", dice_weight=0.5), 3e-3)
    x, y = arrays.images[:16].astype(np.float32), {k: v[:16] for k, v in arrays.targets().items()}
    first = model.train_on_batch(x, y, return_dict=True)
    for _ in range(15):
        last = model.train_on_batch(x, y, return_dict=True)
    print({k: (float(first[k]), float(last[k])) for k in first})
    assert float(last["segmentation_loss"]) < 0.8 * float(first["segmentation_loss"])
    for head in ("species_loss", "breed_loss"):
        assert float(last[head]) < float(first[head]), head
