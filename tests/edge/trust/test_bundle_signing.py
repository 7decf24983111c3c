"""Signed bundles: real keys, real files, minisign itself as the independent verifier."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.backends import create
from edge.bundle import load_bundle, write_manifest
from edge.config import DEMO_BUNDLE, InvalidConfigError, load_config
from edge.errors import BundleError, ConfigError
from edge.trust.bundle_sig import SIGNATURE_NAME, read_signer, sign_bundle
from edge.trust.keys import SecretKey, generate, read_secret, write_key_pair
from export.signing import after_rewrite


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEMO_BUNDLE, tmp_path / "bundle"))


@pytest.fixture
def engineer(tmp_path: Path) -> tuple[SecretKey, Path, Path]:
    key = generate()
    secret, public = write_key_pair(key, tmp_path / "keys" / "engineer", role="engineer")
    return key, secret, public


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120)


def test_signed_bundle_loads_and_names_its_signer(bundle: Path, engineer: tuple[SecretKey, Path, Path]) -> None:
    key, _, _ = engineer
    sign_bundle(bundle, key, signer="A. Engineer")
    loaded = load_bundle(bundle, [key.public])  # the signature file is the bundle's own, not "unlisted"
    signer = read_signer(loaded.root, [key.public])
    assert signer is not None and signer.trusted and signer.name == "A. Engineer"
    assert signer.key_id == key.public.id_text


def test_unsigned_or_foreign_signed_bundle_is_refused_with_the_reason(bundle: Path) -> None:
    trusted, stranger = generate(), generate()
    with pytest.raises(BundleError, match="not signed") as unsigned:
        load_bundle(bundle, [trusted.public])
    assert unsigned.value.exit_code == 4
    sign_bundle(bundle, stranger, signer="someone else")
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(bundle, [trusted.public])
    load_bundle(bundle)  # without configured keys only corruption is checked


def test_a_manifest_field_no_hash_covers_cannot_be_changed_after_signing(
    bundle: Path, engineer: tuple[SecretKey, Path, Path]
) -> None:
    key, _, _ = engineer
    sign_bundle(bundle, key, signer="eng")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["normalization"]["scale"] = 0.5 * manifest["input"]["normalization"]["scale"]
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    load_bundle(bundle)  # every file hash still matches: only the signature can tell
    with pytest.raises(BundleError, match="does not verify"):
        load_bundle(bundle, [key.public])


def test_cli_refuses_a_tampered_bundle_with_exit_4_and_inspect_shows_the_signer(
    bundle: Path, engineer: tuple[SecretKey, Path, Path]
) -> None:
    _, secret, public = engineer
    signed = _cli("export", "sign", str(bundle), "--key", str(secret), "--signer", "Lab Engineer")
    assert signed.returncode == 0, signed.stderr
    shown = _cli("export", "inspect", str(bundle), "--trusted-key", str(public), "--json")
    assert shown.returncode == 0, shown.stderr
    signature = json.loads(shown.stdout)["signature"]
    assert signature["signer"] == "Lab Engineer" and signature["verified"] is True
    text = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text(text.replace('"version"', '"version" ', 1))
    refused = _cli("export", "inspect", str(bundle), "--trusted-key", str(public))
    assert refused.returncode == 4
    assert "does not verify" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.skipif(shutil.which("minisign") is None, reason="minisign is not installed (make broker-dep)")
def test_minisign_verifies_our_signature_and_we_verify_minisigns(
    bundle: Path, engineer: tuple[SecretKey, Path, Path], tmp_path: Path
) -> None:
    key, secret, public = engineer
    sign_bundle(bundle, key, signer="eng")
    ours = subprocess.run(
        ["minisign", "-Vm", str(bundle / "manifest.json"), "-x", str(bundle / SIGNATURE_NAME), "-p", str(public)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ours.returncode == 0, ours.stderr
    # minisign signs with our secret key file (its default prehashed "ED" algorithm); the loader accepts that
    theirs = subprocess.run(
        ["minisign", "-S", "-s", str(secret), "-m", str(bundle / "manifest.json"), "-x", str(bundle / SIGNATURE_NAME),
         "-t", "signer:minisign"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stderr
    load_bundle(bundle, [key.public])
    assert read_signer(bundle, [key.public]).trusted  # type: ignore[union-attr]


def test_secret_keys_others_can_read_are_refused(engineer: tuple[SecretKey, Path, Path]) -> None:
    key, secret, _ = engineer
    assert secret.stat().st_mode & 0o777 == 0o600
    assert read_secret(secret).public.raw() == key.public.raw()
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret(secret)


def test_rewriting_the_manifest_drops_the_signature_and_resigns_with_a_key(
    bundle: Path, engineer: tuple[SecretKey, Path, Path]
) -> None:
    key, secret, _ = engineer
    sign_bundle(bundle, key, signer="eng")
    manifest = load_bundle(bundle).manifest
    write_manifest(bundle, manifest)  # what calibrate and engine do
    assert not (bundle / SIGNATURE_NAME).exists()
    note = after_rewrite(bundle, None, None, signed_before=True)
    assert note is not None and "re-sign" in note
    after_rewrite(bundle, secret, "eng", signed_before=True)
    load_bundle(bundle, [key.public])


def test_a_rehashed_model_that_does_not_parse_is_a_bundle_error(bundle: Path) -> None:
    manifest = load_bundle(bundle).manifest
    for artifact in manifest["artifacts"]:
        if artifact["kind"] == "onnx":
            (bundle / artifact["path"]).write_bytes(b"not an onnx model")
    loaded = write_manifest(bundle, manifest)  # hashes now match the junk
    with pytest.raises(BundleError, match="cannot load") as refused:
        create("onnxruntime", loaded, precision="fp32")
    assert refused.value.exit_code == 4


def test_trusted_keys_are_checked_when_the_configuration_loads(engineer: tuple[SecretKey, Path, Path]) -> None:
    key, _, public = engineer
    config = load_config(None, [f'trust.bundle_keys=["{key.public.encoded()}", "{public}"]'])
    assert [k.id_text for k in config.trust.bundle_public_keys()] == [key.public.id_text] * 2
    with pytest.raises(InvalidConfigError, match=r"trust\.bundle_keys.*not a minisign"):
        load_config(None, ['trust.bundle_keys=["RWQnotakey"]'])


def test_a_model_that_does_not_run_the_manifests_input_is_a_bundle_error(bundle: Path) -> None:
    manifest = load_bundle(bundle).manifest
    manifest["input"]["frames"] = manifest["input"]["frames"] // 2  # the model still wants the original length
    backend = create("onnxruntime", write_manifest(bundle, manifest), precision="fp32")
    with pytest.raises(BundleError, match="does not run the manifest's input") as refused:
        backend.warm_up()
    assert refused.value.exit_code == 4


def test_the_daemon_refuses_an_unsigned_bundle_when_keys_are_configured(
    bundle: Path, engineer: tuple[SecretKey, Path, Path]
) -> None:
    from edge.daemon import Daemon

    key, _, _ = engineer
    config = load_config(None, [f"model.bundle={bundle}", f'trust.bundle_keys=["{key.public.encoded()}"]'])
    with pytest.raises(BundleError, match="not signed"):
        Daemon(config)  # before any camera, backend or broker is touched
    sign_bundle(bundle, key, signer="eng")
    Daemon(config).backend.close()


def _unreadable(path: Path) -> None:
    """Make ``path`` a regular file whose read fails with an OSError, also for root (who ignores chmod 000)."""
    path.unlink(missing_ok=True)
    path.symlink_to("/proc/self/mem")  # a regular file that answers every read at offset 0 with EIO


@pytest.mark.parametrize("name", ["manifest.json", SIGNATURE_NAME])
def test_a_bundle_file_the_daemon_cannot_read_is_refused_with_exit_4(
    bundle: Path, engineer: tuple[SecretKey, Path, Path], name: str
) -> None:
    key, _, public = engineer
    sign_bundle(bundle, key, signer="eng")
    _unreadable(bundle / name)
    with pytest.raises(BundleError, match="cannot read") as refused:
        load_bundle(bundle, [key.public])
    assert refused.value.exit_code == 4 and "readable by the daemon's user" in refused.value.fix
    shown = _cli("export", "inspect", str(bundle), "--trusted-key", str(public))
    assert shown.returncode == 4 and "Traceback" not in shown.stderr, shown.stderr


def test_check_config_refuses_the_bundle_run_would_refuse(
    bundle: Path, engineer: tuple[SecretKey, Path, Path], tmp_path: Path
) -> None:
    key, secret, public = engineer
    config = tmp_path / "edge.toml"
    video = Path(__file__).parents[3] / "samples" / "clip_000_score04.3.mp4"  # a camera the preflight accepts
    config.write_text(
        f'[model]\nbundle = "{bundle}"\n[trust]\nbundle_keys = ["{public}"]\n'
        f'[camera]\nsource = "{video}"\n[device]\nstate_dir = "{tmp_path}"\n'
    )
    unsigned = _cli("edge", "check-config", str(config), "--json")
    assert unsigned.returncode == 4 and "Traceback" not in unsigned.stderr, unsigned.stderr
    report = json.loads(unsigned.stdout)
    assert report["valid"] is False and "not signed" in report["problems"][0]
    assert _cli("export", "sign", str(bundle), "--key", str(secret)).returncode == 0
    signed = _cli("edge", "check-config", str(config))
    assert signed.returncode == 0 and f"signed by key {key.public.id_text}" in signed.stdout, signed.stdout


def test_a_secret_key_in_the_device_configuration_is_refused_without_echoing_it(
    engineer: tuple[SecretKey, Path, Path],
) -> None:
    _, secret, _ = engineer  # e.g. a tab completion that picked engineer.key instead of engineer.pub
    line = secret.read_text().splitlines()[-1]
    with pytest.raises(InvalidConfigError, match="SECRET key") as refused:
        load_config(None, [f'trust.bundle_keys=["{secret}"]'])
    assert line[:12] not in str(refused.value) and "never be on a device" in str(refused.value)


def test_a_damaged_secret_key_in_the_device_configuration_is_not_echoed_either(
    engineer: tuple[SecretKey, Path, Path], tmp_path: Path
) -> None:
    _, secret, _ = engineer
    line = secret.read_text().splitlines()[-1]
    damaged = tmp_path / "damaged.key"
    damaged.write_text(line[:-9] + "\n")  # cut short: no longer recognisable as a secret key, still its bytes
    with pytest.raises(InvalidConfigError, match="not a minisign Ed25519 public key") as refused:
        load_config(None, [f'trust.bundle_keys=["{damaged}"]'])
    assert all(line[i : i + 8] not in str(refused.value) for i in range(len(line) - 8))
