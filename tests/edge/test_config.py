"""Configuration: defaults, the example file, overrides, relative paths, and messages that name key and fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
import tomllib
from daemon_media import write_config
from pydantic import BaseModel

from edge.cli import main
from edge.config import DEMO_BUNDLE, Config, InvalidConfigError, apply_overrides, load_config
from edge.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "systemd" / "config.example.toml"
SAMPLE = Path(__file__).parents[2] / "samples" / "clip_000_score04.3.mp4"


def problems_of(path: Path, *overrides: str) -> list[str]:
    with pytest.raises(InvalidConfigError) as error:
        load_config(path, overrides)
    assert error.value.exit_code == 3
    return error.value.problems


def test_defaults_are_a_valid_configuration() -> None:
    config = load_config(None)
    assert config.model.bundle == DEMO_BUNDLE
    assert config.privacy.consent == "required"  # nothing is processed until consent is recorded
    assert config.camera.source == "/dev/video0" and config.mqtt.port == 1883


def test_the_example_file_documents_the_defaults() -> None:
    assert load_config(EXAMPLE) == Config()
    # not equal by being empty: every section is there, most with its default values written out
    written = tomllib.loads(EXAMPLE.read_text())
    assert set(written) == set(Config.model_fields)
    assert sum(len(section) for section in written.values()) >= 25
    assert written["privacy"]["consent"] == Config().privacy.consent and written["mqtt"]["port"] == Config().mqtt.port


def test_out_of_range_value_names_file_key_bounds_value_and_fix(tmp_path: Path) -> None:
    path = write_config(tmp_path / "edge.toml", {"mqtt": {"port": 99999}})
    (line,) = problems_of(path)
    assert line.startswith("edge.toml: mqtt.port: must be 1-65535, got 99999 (fix: set mqtt.port to a valid value")


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    path = write_config(tmp_path / "edge.toml", {"camera": {"sorce": "/dev/video1"}, "modle": {"x": 1}})
    lines = problems_of(path)
    assert "edge.toml: camera.sorce: unknown key (fix: did you mean camera.source?" in lines[0]
    assert "edge.toml: modle: unknown key (fix: did you mean model?" in lines[1]


def test_wrong_choice_suggests_the_close_one(tmp_path: Path) -> None:
    (line,) = problems_of(write_config(tmp_path / "e.toml", {"model": {"precision": "in8"}}))
    assert "model.precision" in line and "got 'in8'" in line and "did you mean 'int8'?" in line


def test_unknown_backend_lists_the_registered_ones(tmp_path: Path) -> None:
    (line,) = problems_of(write_config(tmp_path / "e.toml", {"model": {"backend": "cuda"}}))
    assert "model.backend: must be one of auto, onnxruntime" in line and "got 'cuda'" in line


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_config(tmp_path / "e.toml", {"camera": {"queue_size": 0}, "privacy": {"k_min_windows": 0}})
    lines = problems_of(path, "mqtt.protocol=4")
    assert [line.split(": ")[1] for line in lines] == ["camera.queue_size", "privacy.k_min_windows", "mqtt.protocol"]
    assert lines[2].startswith("--set: mqtt.protocol:")  # an override names itself, not the file


def test_nested_model_rules_of_the_publish_settings_are_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path / "e.toml", {"mqtt.tls": {"enabled": True, "cert_file": "client.pem"}})
    (line,) = problems_of(path)
    assert line.startswith("e.toml: mqtt.tls:") and "cert_file and tls.key_file go together" in line


@pytest.mark.parametrize(
    ("dp", "names"),
    [
        ({"daily_epsilon": 0.1, "epsilon_per_summary": 1.0}, "lower epsilon_per_summary or raise daily_epsilon"),
        ({"mechanism": "gaussian", "delta_per_summary": 0.0}, "set delta_per_summary to e.g. 1e-6"),
        ({"mechanism": "gaussian", "delta_per_summary": 1e-3}, "0 < delta_per_summary <= daily_delta"),
    ],
)
def test_a_dp_budget_that_could_never_pay_for_a_mean_is_refused(
    tmp_path: Path, dp: dict[str, object], names: str
) -> None:
    # gaussian with delta 0 used to pass here, then spend the budget and crash diffprivlib at the first summary
    (line,) = problems_of(write_config(tmp_path / "e.toml", {"privacy.dp": {"enabled": True, **dp}}))
    assert line.startswith("e.toml: privacy.dp:") and names in line


def test_overrides_parse_toml_values_and_bare_strings() -> None:
    data = apply_overrides(
        {"camera": {"source": "/dev/video0"}},
        [
            "camera.realtime=false",
            "mqtt.port=8883",
            "camera.source=rtsp://cam/1",
            "privacy.dp.epsilon_per_summary=0.25",
        ],
    )
    assert data == {
        "camera": {"source": "rtsp://cam/1", "realtime": False},
        "mqtt": {"port": 8883},
        "privacy": {"dp": {"epsilon_per_summary": 0.25}},
    }


@pytest.mark.parametrize("bad", ["novalue", "=1", "a..b=1", "camera.source.x=1"])
def test_malformed_overrides_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides({"camera": {"source": "x"}}, [bad])


def test_relative_paths_are_taken_from_the_files_directory(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    path = write_config(
        tmp_path / "e.toml",
        {"device": {"state_dir": "state"}, "model": {"bundle": "bundles/b"}, "camera": {"source": "clip.mp4"}},
    )
    config = load_config(path)
    assert config.device.state_dir == tmp_path / "state"
    assert config.model.bundle == tmp_path / "bundles" / "b"
    assert config.camera.source == str(tmp_path / "clip.mp4")
    assert load_config(path, ["camera.source=/dev/video2"]).camera.source == "/dev/video2"


def test_toml_syntax_errors_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_a_camera_index_may_be_written_as_a_number(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path / "e.toml", {"camera": {"source": 1}})).camera.source == "1"


def test_face_settings_reach_the_face_pipeline_config() -> None:
    face = load_config(None, ["face.max_abs_yaw=20", "face.detector_fallback=false"]).face.to_face_config()
    assert face.max_abs_yaw == 20.0 and face.detector_fallback is False


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sections = {"mqtt": {"port": 8883}, "camera": {"source": str(SAMPLE)}, "device": {"state_dir": str(tmp_path)}}
    good = write_config(tmp_path / "good.toml", sections)
    assert main(["check-config", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = write_config(tmp_path / "bad.toml", {"mqtt": {"port": 0}})
    assert main(["check-config", str(bad), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["problems"][0].startswith("bad.toml: mqtt.port: must be 1-65535")
    assert main(["check-config", str(good), "--json", "--set", "mqtt.host=broker.lan"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["mqtt"]["host"] == "broker.lan"


def test_check_config_never_prints_the_broker_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sections = {
        "mqtt": {"username": "edge", "password": "hunter2-secret"},
        "camera": {"source": str(SAMPLE)},
        "device": {"state_dir": str(tmp_path)},
    }
    config = write_config(tmp_path / "c.toml", sections)
    assert main(["check-config", str(config), "--json"]) == 0
    out = capsys.readouterr().out
    assert "hunter2-secret" not in out and json.loads(out)["config"]["mqtt"]["password"] == "(set, not shown)"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("aggregation.rolling_period_s", "inf"),  # exited 0 with a traceback and lost every summary
        ("privacy.dp.daily_epsilon", "inf"),  # exited 1 with a traceback
        ("mqtt.reconnect_min_s", "inf"),  # exited 1 with a traceback
        ("mqtt.health_interval_s", "inf"),  # silently never sent health
        ("aggregation.session_gap_s", "nan"),
        ("face.min_blur", "-inf"),
        ("camera.reopen_max_s", "nan"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(key: str, value: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / "e.toml", {})
    (line,) = problems_of(path, f"{key}={value}")
    assert line.startswith(f"--set: {key}: must be a finite number") and f"got {value}" in line


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("aggregation.rolling_period_s", 1e12),
        ("aggregation.session_gap_s", 1e9),
        ("mqtt.health_interval_s", 1e9),
        ("mqtt.reconnect_max_s", 1e9),
        ("privacy.dp.daily_epsilon", 1e6),
        ("privacy.k_min_windows", 1),  # the contract: a summary never rests on one window
    ],
)
def test_absurd_numbers_are_refused_with_their_bounds(key: str, value: float, tmp_path: Path) -> None:
    (line,) = problems_of(write_config(tmp_path / "e.toml", {}), f"{key}={value}")
    assert line.startswith(f"--set: {key}: must be ") and f"got {value}" in line


def test_run_refuses_a_non_finite_value_with_exit_3_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "e.toml", {"aggregation": {"rolling_period_s": float("inf")}})
    assert main(["run", "--config", str(path)]) == 3
    err = capsys.readouterr().err
    assert "aggregation.rolling_period_s: must be a finite number" in err and "Traceback" not in err


def _numeric_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """Every numeric key of the configuration (dotted) and whether it is an integer, through nested sections."""
    for name, info in model.model_fields.items():
        types = (info.annotation, *get_args(info.annotation))
        section = next((t for t in types if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if section is not None:
            yield from _numeric_keys(section, f"{prefix}{name}.")
        elif int in types or float in types:
            yield f"{prefix}{name}", float not in types


NUMERIC_KEYS = sorted(_numeric_keys(Config))


def test_the_walk_finds_the_keys_of_every_section() -> None:
    sections = {key.split(".")[0] for key, _ in NUMERIC_KEYS}
    assert {"camera", "face", "aggregation", "privacy", "mqtt", "trust", "explain"} <= sections
    assert ("mqtt.outbox.unrouted_retry_s", False) in NUMERIC_KEYS


@pytest.mark.parametrize(("key", "integer"), NUMERIC_KEYS, ids=[key for key, _ in NUMERIC_KEYS])
def test_every_numeric_key_refuses_non_finite_and_absurd_values_naming_itself(
    key: str, integer: bool, tmp_path: Path
) -> None:
    # sections added later (trust, explain) allowed nan, and the outbox's retry delay and hard bounds had no limit
    # (mqtt.outbox.unrouted_retry_s = 1e300 held a summary for ever)
    path = write_config(tmp_path / "e.toml", {})
    for value in ("inf", "-inf", "nan", "1e300", "100000000000000000000"):
        problems = problems_of(path, f"{key}={value}")
        assert len(problems) == 1 and problems[0].startswith(f"--set: {key}: "), (value, problems)
        if value in ("inf", "-inf", "nan") and not integer:
            assert "must be a finite number" in problems[0], problems[0]


def test_password_and_tls_files_are_taken_relative_to_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # they were read against the working directory: check-config run beside the file found them, the daemon
    # (started by systemd in /) refused them
    tls = {"enabled": True, "ca_file": "ca.pem", "cert_file": "/abs/client.pem", "key_file": "client.key"}
    path = write_config(tmp_path / "c.toml", {"mqtt": {"username": "u", "password_file": "pw"}, "mqtt.tls": tls})
    monkeypatch.chdir("/")
    mqtt = load_config(path).mqtt
    assert mqtt.password_file == tmp_path / "pw" and mqtt.tls.ca_file == tmp_path / "ca.pem"
    assert mqtt.tls.key_file == tmp_path / "client.key" and mqtt.tls.cert_file == Path("/abs/client.pem")
    bare = write_config(tmp_path / "bare.toml", {})
    assert load_config(bare, ["mqtt.password_file=pw"]).mqtt.password_file == Path("pw")  # a --set path: the caller's


def test_a_brightness_range_no_frame_can_pass_is_refused(tmp_path: Path) -> None:
    # each bound was checked alone: min 200 and max 100 passed, and every window then failed the quality gate
    path = write_config(tmp_path / "e.toml", {})
    (line,) = problems_of(path, "face.min_brightness=200", "face.max_brightness=100")
    assert "face.min_brightness (200.0) must be below face.max_brightness (100.0)" in line


@pytest.mark.parametrize(
    ("document", "section", "a_key"),
    [('camera = "/dev/video0"', "camera", "source"), ("face = 3", "face", "max_num_faces"),
     ("[privacy]\ndp = true", "privacy.dp", "enabled"), ('[[camera]]\nsource = "x"', "camera", "source")],
)  # fmt: skip
def test_a_value_where_a_section_belongs_says_to_write_the_section(
    tmp_path: Path, document: str, section: str, a_key: str
) -> None:
    path = tmp_path / "e.toml"
    path.write_text(document + "\n")
    (line,) = problems_of(path)
    assert f"e.toml: {section}: is a section" in line and f"write it as [{section}]" in line and a_key in line
