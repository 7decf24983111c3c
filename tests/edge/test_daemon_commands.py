"""The demo and replay commands: what an integrator sees, the broker fallbacks, and the benchmark's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from daemon_media import media_set

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import load_bundle
from edge.cli import main
from edge.config import DEMO_BUNDLE
from edge.errors import BrokerError
from edge.schemas import schema_errors

RANDOM_OK = ["--set", "model.allow_random_weights=true"]
"""The fixture bundle has random weights: the demo runs it only when told so."""


@pytest.fixture
def media() -> dict[str, Any]:
    return media_set()


def test_demo_prints_what_an_integrator_receives(
    media: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "demo",
        "--video",
        str(media["face"]),
        "--json",
        "--set",
        f"model.bundle={media['bundle'].root}",
        *RANDOM_OK,
    ]
    prefix = f"chosen-{tmp_path.name[-8:]}"  # an integrator's own prefix: the demo's subscriber follows it
    overrides = ["--set", "privacy.k_min_windows=2", "--set", "model.backend=onnxruntime"]
    assert main([*argv, *overrides, "--set", f'mqtt.topic_prefix="{prefix}"']) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all(line["topic"].startswith(f"{prefix}/v2/") for line in lines)
    summaries = [line["payload"] for line in lines if line["topic"].endswith("/summary")]
    assert {s["kind"] for s in summaries} == {"session", "rolling"}
    assert all(schema_errors(s, "summary") == [] for s in summaries)
    assert all(
        s["regions"] and sum(s["regions"].values()) == pytest.approx(1.0, abs=0.01) for s in summaries
    )  # 3 decimals each
    assert lines[-1]["payload"]["state"] == "offline"
    assert main(["demo", "--broker", "http://nowhere"]) == 2  # a usage error, said in one line


SCORE = {"mean": 12.0, "median": 11.0, "q1": 9.0, "q3": 14.0, "bands": None, "scale": "BDI-II"}


def _summary_doc(**fields: Any) -> dict[str, Any]:
    """A summary document as the demo table reads it, with ``fields`` set."""
    return {
        "kind": "session",
        "period": {"start": "2026-12-06T10:00:00Z", "end": "2026-12-06T10:15:00Z", "complete": True},
        "windows": {"scored": 9, "rejected_total": 1},
        "score": SCORE,
        **fields,
    }


def test_the_demo_table_shows_region_shares_largest_first() -> None:
    from edge.commands.demo import render

    doc = _summary_doc(regions={"nose": 0.05, "mouth": 0.61, "left_eye": 0.34})
    first, second = render("x/v2/d/summary", doc).splitlines()
    assert first.startswith("summary") and "12.0" in first
    assert second.strip() == "regions: mouth 61%, left_eye 34%, nose 5%"
    assert len(render("x/v2/d/summary", {**doc, "regions": None}).splitlines()) == 1


def test_the_demo_table_shows_each_further_outputs_region_shares_under_its_row() -> None:
    from edge.commands.demo import render

    doc = _summary_doc(
        outputs=[
            {**SCORE, "name": "bdi_ii", "regions": {"mouth": 0.7, "nose": 0.3}},
            {**SCORE, "name": "phq9", "scale": "PHQ-9", "regions": {"mouth": 0.1, "right_eye": 0.9}},
        ],
        regions={"mouth": 0.7, "nose": 0.3},
    )
    rows = [row.strip() for row in render("x/v2/d/summary", doc).splitlines()]
    assert rows[1].startswith("phq9") and rows[2] == "phq9 regions: right_eye 90%, mouth 10%"
    assert rows[3] == "bdi_ii regions: mouth 70%, nose 30%" and len(rows) == 4
    doc["outputs"][1]["regions"] = None  # not published (fewer than k, or differential privacy)
    assert [row.split()[0] for row in render("x/v2/d/summary", doc).splitlines()] == ["summary", "phq9", "bdi_ii"]


def test_replay_reports_throughput_stages_cpu_and_memory(
    media: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", str(media["face"]), "--fast", "--json", "--bundle", str(media["bundle"].root), *RANDOM_OK]
    assert main([*argv, "--set", "model.backend=onnxruntime"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["frames_read"], report["frames_sampled"], report["frames_processed"]) == (90, 24, 24)
    assert report["windows_scored"] == 5 and report["frames_dropped"] == 0
    assert report["realtime_factor"] > 0 and report["cpu_percent_of_one_core"] > 0 and report["peak_rss_mb"] > 50
    assert report["stage_s"]["face: mediapipe"] > 0 and report["stage_s"]["inference"] > 0
    assert report["windows_explained"] == 1  # the default share, one window in 8: of 5, the 1st
    assert report["stage_s"]["explain (occlusion)"] > 0 and 0 < report["explain_share_of_pipeline_time"] < 1


@pytest.mark.slow
def test_demo_falls_back_to_the_embedded_broker_without_mosquitto(
    media: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import amqtt  # noqa: F401  (the [broker] extra CI installs: a missing one fails here, not silently)

    import edge.commands._demo_broker as brokers

    monkeypatch.setattr(brokers, "mosquitto_binary", lambda: None)  # as on a machine without Mosquitto
    argv = ["demo", "--video", str(media["face"]), "--set", f"model.bundle={media['bundle'].root}", *RANDOM_OK]
    assert main([*argv, "--set", "privacy.k_min_windows=2", "--set", "model.backend=onnxruntime"]) == 0
    out = capsys.readouterr().out
    assert "embedded amqtt" in out and "summary   session" in out and NOT_A_DIAGNOSTIC_DEVICE in out


def test_demo_without_any_broker_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    import edge.commands._demo_broker as brokers

    real_import = builtins.__import__

    def no_amqtt(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "amqtt" or name.startswith("amqtt."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(brokers, "mosquitto_binary", lambda: None)
    monkeypatch.setattr(builtins, "__import__", no_amqtt)
    with pytest.raises(BrokerError, match="no MQTT broker") as error, brokers.demo_broker(None):
        pass
    assert error.value.fix and "apt-get install mosquitto" in error.value.fix and "--broker" in error.value.fix


@pytest.mark.slow
def test_demo_runs_with_no_setup_on_the_bundled_model_and_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summaries = [line["payload"] for line in lines if line["topic"].endswith("/summary")]
    assert summaries and all(schema_errors(s, "summary") == [] for s in summaries)
    assert all(s["model"]["name"] == load_bundle(DEMO_BUNDLE).name for s in summaries)


@pytest.mark.parametrize("command", ["run", "demo", "replay", "check-config", "--help"])
def test_help_shows_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"] if command != "--help" else ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "python -m edge" in out and ("examples:" in out or command == "--help")


def test_a_two_output_bundle_publishes_both_outputs_with_their_bands(
    media: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon_media import PHQ9_PER_BDI

    bundle = media["two_output_bundle"]
    argv = ["demo", "--video", str(media["face"]), "--json", "--set", f"model.bundle={bundle.root}", *RANDOM_OK]
    assert main([*argv, "--set", "privacy.k_min_windows=2", "--set", "model.backend=onnxruntime"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summaries = [line["payload"] for line in lines if line["topic"].endswith("/summary")]
    assert summaries and all(schema_errors(s, "summary") == [] for s in summaries)
    for summary in summaries:
        bdi, phq = summary["outputs"]
        assert (bdi["name"], bdi["scale"], phq["name"], phq["scale"]) == ("bdi_ii", "BDI-II", "phq9", "PHQ-9")
        assert {k: v for k, v in bdi.items() if k not in ("name", "withheld", "regions")} == summary["score"]
        assert bdi["regions"] == summary["regions"] and phq["regions"]  # primary first; each output's own shares
        assert phq["range"] == [0.0, 27.0] and list(phq["bands"]) == [
            "none_minimal",
            "mild",
            "moderate",
            "moderately_severe",
            "severe",
        ]
        assert phq["mean"] == pytest.approx(PHQ9_PER_BDI * bdi["mean"], abs=0.01)  # each output its own windows' mean
        assert abs(sum(phq["bands"].values()) - 1) < 0.01 and phq["withheld"] == []
    from edge.commands.demo import render

    rows = render("x/v2/d/summary", summaries[0]).splitlines()
    assert rows[0].startswith("summary") and "BDI-II:" in rows[0]
    assert rows[1].split()[0] == "phq9" and "PHQ-9:" in rows[1]  # one row per further output
    assert rows[2].split()[:2] == ["phq9", "regions:"] and rows[3].split()[:2] == ["bdi_ii", "regions:"]


def test_the_demo_table_shows_descriptor_means_when_the_device_publishes_them() -> None:
    from edge.commands.demo import render

    doc = _summary_doc(regions=None, behaviour={"eye_openness": 0.312, "gaze_x": -0.04})
    _, second = render("x/v2/d/summary", doc).splitlines()
    assert second.strip() == "behaviour (proxies): eye_openness 0.31, gaze_x -0.04"
