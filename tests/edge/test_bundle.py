"""Bundle loading: a good bundle loads; each kind of tampering is refused with its own message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bundle import FORMAT_VERSION, MANIFEST_NAME, load_bundle, sha256_of
from edge.errors import BundleError

MODEL = "model.fp32.onnx"


def _edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_a_good_bundle_loads_with_its_identity(exported_bundle: Path) -> None:
    bundle = load_bundle(exported_bundle)
    assert bundle.find("onnx", precision="fp32") is not None
    assert bundle.find("onnx", precision="int8") is None
    assert bundle.artifacts[0].sha256 == sha256_of(exported_bundle / MODEL)
    identity = bundle.identity
    assert identity["architecture"] == "expresso-tsm" and len(identity["manifest_sha256"]) == 64
    assert [tile.region for tile in bundle.tiles][:2] == ["right_eyebrow", "left_eyebrow"]
    assert bundle.output.span == 63


def test_one_changed_byte_is_refused(exported_bundle: Path) -> None:
    model = exported_bundle / MODEL
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{MODEL} was modified: SHA-256"):
        load_bundle(exported_bundle)


def test_a_truncated_file_is_refused_by_its_size(exported_bundle: Path) -> None:
    model = exported_bundle / MODEL
    size = model.stat().st_size
    with model.open("r+b") as handle:
        handle.truncate(size - 10)
    with pytest.raises(BundleError, match=f"{MODEL} was truncated or grown: {size - 10} bytes, manifest says {size}"):
        load_bundle(exported_bundle)


def test_a_missing_file_is_refused(exported_bundle: Path) -> None:
    (exported_bundle / MODEL).unlink()
    with pytest.raises(BundleError, match=f"is missing {MODEL}, which its manifest lists"):
        load_bundle(exported_bundle)


def test_a_wrong_format_version_is_refused(exported_bundle: Path) -> None:
    _edit_manifest(exported_bundle, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleError, match=f"format version {FORMAT_VERSION + 1}; this expresso-edge reads version"):
        load_bundle(exported_bundle)


def test_an_unlisted_extra_file_is_refused(exported_bundle: Path) -> None:
    (exported_bundle / "payload.onnx").write_bytes(b"\x00" * 16)
    with pytest.raises(BundleError, match=r"holds files its manifest does not list: payload\.onnx"):
        load_bundle(exported_bundle)


def test_broken_json_is_refused(exported_bundle: Path) -> None:
    path = exported_bundle / MANIFEST_NAME
    path.write_text(path.read_text()[:-20])
    with pytest.raises(BundleError, match="is not valid JSON"):
        load_bundle(exported_bundle)


def test_a_manifest_breaking_the_schema_is_refused(exported_bundle: Path) -> None:
    _edit_manifest(exported_bundle, output={"name": "bdi", "units": "HAM-D", "range": [0, 52]})
    with pytest.raises(BundleError, match="breaks the manifest schema: output/units"):
        load_bundle(exported_bundle)


def test_a_published_scale_with_another_range_is_refused(exported_bundle: Path) -> None:
    _edit_manifest(exported_bundle, output={"name": "phq9", "units": "PHQ-9", "range": [0, 63]})
    with pytest.raises(BundleError, match=r"output range \[0, 63\] is not PHQ-9's \[0, 27\]"):
        load_bundle(exported_bundle)
    _edit_manifest(exported_bundle, output={"name": "phq9", "units": "PHQ-9", "range": [0, 27]})
    assert load_bundle(exported_bundle).scale.band_names[-2:] == ("moderately_severe", "severe")


def test_a_missing_manifest_and_a_missing_directory_are_refused(exported_bundle: Path, tmp_path: Path) -> None:
    (exported_bundle / MANIFEST_NAME).unlink()
    with pytest.raises(BundleError, match=r"has no manifest\.json"):
        load_bundle(exported_bundle)
    with pytest.raises(BundleError, match="is not a directory"):
        load_bundle(tmp_path / "nowhere")


PHQ9 = {"name": "phq9", "units": "PHQ-9", "range": [0, 27]}


def test_a_manifest_of_several_outputs_loads_them_in_order_and_the_older_single_output_still_loads(
    exported_bundle: Path,
) -> None:
    single = load_bundle(exported_bundle)  # written by export with one ``output``
    assert [(o.name, o.scale.name) for o in single.outputs] == [(single.output.name, "BDI-II")]
    _edit_manifest(exported_bundle, outputs=[json.loads(json.dumps(single.manifest["output"])), PHQ9])
    path = exported_bundle / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    with pytest.raises(BundleError, match="breaks the manifest schema"):  # ``output`` and ``outputs``: which?
        load_bundle(exported_bundle)
    del manifest["output"]
    path.write_text(json.dumps(manifest))
    both = load_bundle(exported_bundle)
    assert [(o.name, o.scale.name) for o in both.outputs] == [(single.output.name, "BDI-II"), ("phq9", "PHQ-9")]
    assert both.scale.name == "BDI-II" and both.output.span == 63  # the primary output


def test_outputs_of_one_name_or_a_wrong_range_are_refused(exported_bundle: Path) -> None:
    path = exported_bundle / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    del manifest["output"]
    path.write_text(json.dumps({**manifest, "outputs": [PHQ9, PHQ9]}))
    with pytest.raises(BundleError, match=r"outputs repeat a name \(phq9, phq9\)"):
        load_bundle(exported_bundle)
    path.write_text(json.dumps({**manifest, "outputs": [PHQ9, {**PHQ9, "name": "p8", "units": "PHQ-8"}]}))
    with pytest.raises(BundleError, match=r"range \[0, 27\] is not PHQ-8's \[0, 24\]"):
        load_bundle(exported_bundle)
