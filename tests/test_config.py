"""Config: YAML onto the schema, overrides, base inheritance, errors naming file and key."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import yaml

from videofocus.config import (
    Config,
    ConfigError,
    GlimpseOptionConfig,
    SyntheticDataConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path):
    return _write(
        tmp_path / "tiny.yaml",
        """\
name: tiny
data:
  root: data/synthetic
  frames: 4
  synthetic: {num_videos: 12, num_classes: 3}
model:
  glance_backbone: mobilenet_v2
  options:
    - {extent: 0.25, resolution: 32}
    - {extent: 1.0, resolution: 64, backbone: resnet18}
  grid: 5
train:
  epochs: 2
  amp: off
  optim: {name: adamw, lr: 1e-3, lr_mult: {global_encoder: 0.1}}
""",
    )


def test_defaults_are_complete_and_valid(tmp_path):
    cfg = Config()
    assert cfg.model.grid == 7 and cfg.data.sampler == "tsn" and cfg.train.amp == "auto"
    assert cfg.data.sampling == "exact"  # keyframe sampling is asked for, never the default
    assert cfg.model.options == [GlimpseOptionConfig(extent=0.5, resolution=112)]
    assert cfg.data.synthetic is None and cfg.exit.thresholds is None
    assert cfg.train.optim.lr_mult == {} and cfg.policy.algo == "recurrent_ppo"
    # an empty file is the schema's defaults
    assert load_config(_write(tmp_path / "empty.yaml", "")) == cfg


def test_yaml_values_land_typed(tiny):
    cfg = load_config(tiny)
    assert isinstance(cfg, Config) and cfg.name == "tiny"
    assert cfg.data.frames == 4
    assert cfg.data.synthetic == SyntheticDataConfig(num_videos=12, num_classes=3)
    assert cfg.model.options[1] == GlimpseOptionConfig(1.0, 64, "resnet18")
    assert cfg.train.amp == "off"  # YAML 1.2: `off` is a string, not False
    assert cfg.train.optim.lr == 1e-3 and isinstance(cfg.train.optim.lr, float)
    assert cfg.train.optim.lr_mult == {"global_encoder": 0.1}
    assert isinstance(cfg.model.options[0].extent, float)  # written as 0.25 -> float
    assert cfg.data.resolve(cfg.data.manifest).as_posix() == "data/synthetic/manifest.jsonl"


def test_overrides_change_values_and_types(tiny):
    cfg = load_config(
        tiny,
        [
            "train.epochs=3",
            "train.optim.lr=1",  # an int written for a float field is widened
            "model.options=[{extent: 0.125, resolution: 16}]",
            "model.options[0].resolution=24",
            "train.optim.lr_mult.local_encoder=0.5",
            "data.synthetic=null",
            "exit.thresholds=[0.9]",
            "name=2024",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.train.optim.lr == 1.0 and isinstance(cfg.train.optim.lr, float)
    assert cfg.model.options == [GlimpseOptionConfig(0.125, 24)]
    assert cfg.train.optim.lr_mult == {"global_encoder": 0.1, "local_encoder": 0.5}
    assert cfg.data.synthetic is None
    assert cfg.exit.thresholds == [0.9]
    assert cfg.name == "2024"


def test_base_inheritance(tmp_path, tiny):
    (tmp_path / "paper").mkdir()
    child = _write(
        tmp_path / "paper" / "big.yaml",
        "base: ../tiny.yaml\nname: big\ndata: {frames: 16}\ntrain: {optim: {lr: 0.1}}\n",
    )
    cfg = load_config(child, ["train.epochs=7"])
    assert cfg.name == "big" and cfg.data.frames == 16 and cfg.train.epochs == 7
    assert cfg.train.optim.lr == 0.1 and cfg.train.optim.name == "adamw"  # mapping merged
    assert cfg.model.grid == 5  # inherited untouched

    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: base: inherits from itself"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match=r"nothere\.yaml: config file not found"):
        load_config(_write(tmp_path / "c.yaml", "base: nothere.yaml\n"))


def test_save_load_round_trip(tmp_path, tiny):
    cfg = load_config(tiny, ["policy.cost_lambda=0.05", "exit.budget_gmacs=12.5"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert out.is_file()
    assert load_config(out) == cfg
    as_dict = config_to_dict(cfg)
    assert as_dict == yaml.safe_load(out.read_text())
    assert as_dict["model"]["options"][0] == {"extent": 0.25, "resolution": 32, "backbone": None}
    assert config_from_dict(as_dict) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epoch: 3\n", r"unknown key 'train\.epoch' \(did you mean 'train\.epochs'\?\)"),
        ("trian: {epochs: 3}\n", r"unknown key 'trian' \(did you mean 'train'\?\)"),
        ("model:\n  options: [{extnt: 0.5, resolution: 8}]\n", r"unknown key 'model\.options\[0\]"),
        ("train: {zzz: 1}\n", r"unknown key 'train\.zzz' \(valid keys here: epochs, "),
        ("train:\n  epochs: three\n", r"train\.epochs: expected int, got 'three'"),
        ("train: {epochs: 2.5}\n", r"train\.epochs: expected int, got 2\.5"),
        ("policy: {allow_skip: yes}\n", r"policy\.allow_skip: expected bool, got 'yes'"),
        ("model: {grid: null}\n", r"model\.grid: expected int, got null"),
        ("model: {options: {extent: 0.5}}\n", r"model\.options: expected list of mapping"),
        ("train: 5\n", r"train: expected mapping \(TrainConfig\), got 5"),
        ("train: {optim: {lr: -0.1}}\n", r"train\.optim\.lr: must be > 0, got -0\.1"),
        ("train: {amp: fp16}\n", r"train\.amp: must be one of \['auto', 'bf16', 'off'\]"),
        ("data: {frames: 0}\n", r"data\.frames: must be > 0, got 0"),
        (
            "data: {sampling: keyframes}\n",
            r"data\.sampling: must be one of \['exact', 'keyframe'\], got 'keyframes'",
        ),
        ("model: {grid: -1}\n", r"model\.grid: must be > 0, got -1"),
        (
            "model:\n  options:\n"
            "    - {extent: 0.5, resolution: 8}\n    - {extent: 1.5, resolution: 8}\n",
            r"model\.options\[1\]\.extent: must be in \(0, 1\], got 1\.5",
        ),
        ("model: {options: [{extent: 0.5}]}\n", r"model\.options\[0\]\.resolution: required"),
        ("train: {epochs: 1, optim: {warmup_epochs: 2}}\n", r"train\.optim\.warmup_epochs: is 2"),
        ("data: {frames: 4}\nexit: {thresholds: [0.5, 0.6]}\n", r"exit\.thresholds: has 2 values"),
        (  # the glance exit takes one threshold more: one per frame is one short
            "data: {frames: 2}\nexit: {thresholds: [0.5, 0.6], glance_exit: true}\n",
            r"exit\.thresholds: has 2 values; expected 1 or one per frame and one for "
            r"exit\.glance_exit",
        ),
        ("exit: {glance_exit: 1}\n", r"exit\.glance_exit: expected bool, got 1"),
        ("- a\n- b\n", r"expected a mapping at the top"),
    ],
)
def test_file_errors_name_file_and_key(tmp_path, text, message):
    path = _write(tmp_path / "x.yaml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_malformed_yaml_names_line(tmp_path):
    path = _write(tmp_path / "bad.yaml", "name: x\ntrain:\n  epochs: [1, 2\nmodel: {}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: malformed YAML"):
        load_config(path)
    path = _write(tmp_path / "dup.yaml", "train: {epochs: 1}\nname: a\ntrain: {seed: 2}\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:3: malformed YAML: duplicate key 'train'"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs", r"override 'train\.epochs': expected key=value"),
        ("train..epochs=1", r"malformed key 'train\.\.epochs'"),
        ("train.epochs=", r"train\.epochs: empty value"),
        ("train.epoch=3", r"unknown key 'train\.epoch' \(did you mean 'train\.epochs'\?\)"),
        ("train.epochs=three", r"override 'train\.epochs=three': train\.epochs: expected int"),
        ("data.sampling=nearest", r"override 'data\.sampling=nearest': data\.sampling: must be"),
        ("train.optim.lr=0", r"override 'train\.optim\.lr=0': train\.optim\.lr: must be > 0"),
        ("model.options[2].extent=0.5", r"model\.options\[2\]: out of range: the list has 2"),
        ("model.grid.size=3", r"model\.grid: has type int; no key 'size'"),
        ("exit.budget_gmacs=[1", r"override 'exit\.budget_gmacs=\[1':1: malformed YAML"),
        ("model.options=[{extent: 2.0, resolution: 8}]", r"model\.options\[0\]\.extent: must be"),
        (
            "model.glance_backbone=resnet9000",
            r"override 'model\.glance_backbone=resnet9000': model\.glance_backbone: unknown "
            r"backbone 'resnet9000'; registered: .*resnet50",
        ),
        ("model.options[1].backbone=resnet19", r"model\.options\[1\]\.backbone: unknown backb"),
    ],
)
def test_override_errors(tiny, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tiny, [override])


def test_glance_exit_is_off_by_default_and_takes_one_threshold_more(tiny):
    assert load_config(tiny).exit.glance_exit is False
    frames = load_config(tiny).data.frames
    on = load_config(tiny, ["exit.glance_exit=true", f"exit.thresholds={[0.9] * (frames + 1)}"])
    assert on.exit.glance_exit is True and len(on.exit.thresholds) == frames + 1


def test_override_into_null_section_says_how_to_fix(tiny):
    with pytest.raises(ConfigError, match=r"data\.synthetic: is null; set it first"):
        load_config(tiny, ["data.synthetic=null", "data.synthetic.num_frames=3"])
    cfg = load_config(
        tiny, ["data.synthetic=null", "data.synthetic={}", "data.synthetic.num_frames=3"]
    )
    assert cfg.data.synthetic == SyntheticDataConfig(num_frames=3)


def test_error_type_and_programmatic_validation():
    with pytest.raises(ConfigError) as info:
        TrainConfig(epochs=0)
    err = info.value
    assert isinstance(err, ValueError) and err.key == "epochs" and err.source is None
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) == "epochs: must be > 0, got 0"
    with pytest.raises(ConfigError, match="extent: must be in"):
        GlimpseOptionConfig(extent=0.0, resolution=8)
    # dataclasses.replace re-validates, so derived configs stay valid too
    with pytest.raises(ConfigError, match="grid: must be > 0"):
        dataclasses.replace(Config().model, grid=0)


def test_sar_knobs_reach_the_sar_blocks_and_other_backbones_refuse_them():
    from videofocus.artifacts.factory import build_focusnet
    from videofocus.models.sar import SARBlock

    cfg = load_config(
        "synthetic_tiny",
        [
            "model.local_backbone=tiny_resnet_sar",
            "model.refine_ratio=0.25",
            "model.sar_patch_grid=4",
        ],
    )
    blocks = [m for m in build_focusnet(cfg, 10).modules() if isinstance(m, SARBlock)]
    assert blocks and all(b.refine_ratio == 0.25 and b.patch_grid == 4 for b in blocks)
    with pytest.raises(ConfigError, match=r"model\.refine_ratio.*only SAR backbones.*tiny_resnet"):
        load_config("synthetic_tiny", ["model.refine_ratio=0.25"])
    with pytest.raises(ConfigError, match=r"model\.refine_ratio"):
        load_config(
            "synthetic_tiny", ["model.local_backbone=tiny_resnet_sar", "model.refine_ratio=2"]
        )
