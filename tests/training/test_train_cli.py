"""`python -m training train`: flags come from TrainConfig, presets set defaults that flags override,
and a configuration that cannot train is refused before any work, with exit status 2."""

from __future__ import annotations

import dataclasses
import json

import pytest

from training.cli import build_parser, config_from_args, main
from training.config import PRESETS, TrainConfig

REQUIRED = ["--data-dir", "photos", "--run-dir", "runs/x"]


def parse(*flags: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["train", *REQUIRED, *flags]))


def test_every_config_field_has_a_train_flag():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train._actions for opt in action.option_strings}
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("cli") is not False:
            assert "--" + f.name.replace("_", "-") in flags, f.name


def test_without_flags_the_config_is_trainconfigs_defaults():
    assert parse() == TrainConfig(data_dir="photos", run_dir="runs/x")


def test_a_flag_sets_its_field_with_the_fields_type():
    cfg = parse("--input-size", "160", "--species-weight", "0.3", "--fine-tune-from", "block_13_expand")
    assert (cfg.input_size, cfg.species_weight, cfg.fine_tune_from) == (160, 0.3, "block_13_expand")


def test_seed_preset_is_the_tutorials_configuration():
    cfg = parse("--preset", "seed")
    assert (cfg.input_size, cfg.decoder, cfg.heads, cfg.augment) == (128, "pix2pix", "none", "flip")
    assert (cfg.encoder_weights, cfg.epochs, cfg.fine_tune_epochs, cfg.preset) == ("imagenet", 20, 0, "seed")


def test_v2_preset_is_the_light_decoder_at_224_with_heads():
    cfg = parse("--preset", "v2")
    assert (cfg.input_size, cfg.decoder, cfg.heads, cfg.alpha) == (224, "light", "species-breed", 1.0)


def test_v3_preset_narrows_the_finest_decoder_level_and_fine_tunes_gently():
    cfg = parse("--preset", "v3")
    assert (cfg.input_size, cfg.decoder, cfg.fine_channels, cfg.heads) == (224, "light", 32, "species-breed")
    assert cfg.fine_tune_learning_rate < PRESETS["v2"]["fine_tune_learning_rate"]


def test_explicit_flags_override_a_preset():
    cfg = parse("--preset", "seed", "--input-size", "160", "--epochs", "3")
    assert (cfg.input_size, cfg.epochs, cfg.augment) == (160, 3, PRESETS["seed"]["augment"])


def test_epochs_zero_without_init_weights_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    status = main(["train", "--data-dir", "synthetic", "--run-dir", str(run), "--epochs", "0"])
    assert status == 2
    assert "--init-weights" in capsys.readouterr().err
    assert not run.exists()  # refused before anything was written or decoded


def test_missing_init_weights_file_is_a_clear_error(tmp_path, capsys):
    status = main(
        ["train", *REQUIRED[:2], "--run-dir", str(tmp_path / "r"), "--init-weights", str(tmp_path / "no.h5")]
    )
    assert status == 2 and "neither a weights file nor an exported SavedModel" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--heads", "--decoder", "--augment"])
def test_choices_are_checked_by_the_parser(flag):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", *REQUIRED, flag, "nonsense"])
    assert exc.value.code == 2


def test_a_run_recorded_before_heads_and_decoders_existed_loads_as_v1s_architecture(tmp_path):
    TrainConfig(data_dir="d", run_dir=str(tmp_path)).save(tmp_path)
    recorded = json.loads((tmp_path / "config.json").read_text())
    for new_field in ("heads", "decoder", "species_weight", "breed_weight", "head_dropout", "preset"):
        del recorded[new_field]
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    cfg = TrainConfig.load(tmp_path)
    assert (cfg.heads, cfg.decoder) == ("none", "pix2pix")
