"""Load a model bundle, refusing one whose schema, format version or file hashes do not match."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.bundle.manifest import Artifact, InputSpec, OutputSpec, Tile
from edge.errors import BundleError
from edge.scale import NamedScale, Scale, named_scales, output_sections
from edge.schemas import schema_errors
from edge.trust.bundle_sig import SIGNATURE_NAME, verify_bundle
from edge.trust.keys import PublicKey

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle on disk."""

    root: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        """The model's name."""
        return str(self.manifest["model"]["name"])

    @property
    def input(self) -> InputSpec:
        """Input window specification."""
        return InputSpec.from_manifest(self.manifest["input"])

    @property
    def output(self) -> OutputSpec:
        """The primary (first) output's specification."""
        return OutputSpec.from_manifest(output_sections(self.manifest)[0])

    @property
    def outputs(self) -> tuple[NamedScale, ...]:
        """Every output, name and scale, in the order of the model's output columns (primary first)."""
        return named_scales(self.manifest)

    @property
    def scale(self) -> Scale:
        """The primary output's scale (range and bands), as the manifest names it."""
        return self.outputs[0].scale

    @property
    def tiles(self) -> tuple[Tile, ...]:
        """The region mosaic layout."""
        return tuple(Tile(**tile) for tile in self.manifest["regions"]["tiles"])

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        """Every file the manifest lists."""
        return tuple(Artifact.from_manifest(record) for record in self.manifest["artifacts"])

    @property
    def identity(self) -> dict[str, str]:
        """Who made a score: model name, architecture and manifest digest, for payloads and logs."""
        digest = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()
        return {
            "name": self.name,
            "architecture": str(self.manifest["model"]["architecture"]),
            "version": str(self.manifest["model"].get("version", "0")),
            "manifest_sha256": digest,
        }

    def find(self, kind: str, *, precision: str | None = None, target: str | None = None) -> Artifact | None:
        """The first artifact of ``kind`` matching precision and target (``target=None`` matches any)."""
        for artifact in self.artifacts:
            if artifact.kind != kind:
                continue
            if precision is not None and artifact.precision != precision:
                continue
            if target is not None and artifact.target not in (target, "any"):
                continue
            return artifact
        return None

    def path_of(self, artifact: Artifact) -> Path:
        """Absolute path of an artifact."""
        return self.root / artifact.path


def _read_manifest(root: Path, trusted: Sequence[PublicKey]) -> dict[str, Any]:
    """The manifest; with ``trusted`` keys, its bytes are verified against the signature before being parsed."""
    if not root.is_dir():
        raise BundleError(
            f"model bundle {root} is not a directory", fix="pass the directory `python -m export onnx` wrote"
        )
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(
            f"model bundle {root} has no {MANIFEST_NAME}", fix="re-export the bundle with `python -m export onnx`"
        )
    data = path.read_bytes()
    if trusted:
        verify_bundle(root, trusted, data)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(
            f"{path} is not valid JSON: {exc}", fix="restore the bundle from its source or re-export it"
        ) from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} must hold a JSON object", fix="restore the bundle from its source or re-export it")
    return manifest


def check_format_version(manifest: dict[str, Any], where: Path) -> None:
    """Refuse a manifest written for another bundle format version."""
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle {where} has format version {version!r}; this expresso-edge reads version {FORMAT_VERSION}",
            fix="re-export the bundle with this release of expresso-edge, or install the release that wrote it",
        )


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Check that every listed file exists with its recorded size and SHA-256, and nothing else is there."""
    listed = set()
    for record in manifest["artifacts"]:
        artifact = Artifact.from_manifest(record)
        listed.add(artifact.path)
        path = root / artifact.path
        if not path.is_file():
            raise BundleError(
                f"bundle {root} is missing {artifact.path}, which its manifest lists",
                fix="copy the complete bundle directory again or re-export it",
            )
        size = path.stat().st_size
        if size != artifact.size:
            raise BundleError(
                f"bundle file {path} was truncated or grown: {size} bytes, manifest says {artifact.size}",
                fix="copy the complete bundle again, or replace it with a trusted copy",
            )
        actual = sha256_of(path)
        if actual != artifact.sha256:
            raise BundleError(
                f"bundle file {path} was modified: SHA-256 {actual[:16]}... does not match the manifest's "
                f"{artifact.sha256[:16]}...",
                fix="the bundle is corrupt or tampered with; replace it with a trusted copy",
            )
    own = {MANIFEST_NAME, SIGNATURE_NAME}
    unlisted = sorted(p.name for p in root.iterdir() if p.name not in own and p.name not in listed)
    if unlisted:
        raise BundleError(
            f"bundle {root} holds files its manifest does not list: {', '.join(unlisted)}",
            fix="remove them; only files recorded by export, calibrate or engine belong in a bundle",
        )


def load_bundle(root: str | Path, trusted: Sequence[PublicKey] = ()) -> Bundle:
    """Read and verify a bundle: with ``trusted`` keys its manifest's signature first, then JSON Schema, format
    version and every file's size and SHA-256."""
    root = Path(root)
    try:
        manifest = _read_manifest(root, trusted)
        check_format_version(manifest, root)
        problems = schema_errors(manifest, "manifest")
        if problems:
            raise BundleError(
                f"bundle {root}: manifest.json breaks the manifest schema: " + "; ".join(problems[:5]),
                fix="re-export the bundle; hand edits to manifest.json are not supported",
            )
        try:
            outputs = named_scales(manifest)
        except ValueError as error:
            raise BundleError(
                f"bundle {root}: manifest output: {error}", fix="re-export the bundle naming its scale with --scale"
            ) from error
        names = [output.name for output in outputs]
        if len(set(names)) != len(names):
            raise BundleError(
                f"bundle {root}: manifest outputs repeat a name ({', '.join(names)})",
                fix="re-export the bundle giving each output its own name",
            )
        verify_files(root, manifest)
    except OSError as error:  # e.g. a file copied as root with mode 0600: a bad bundle (exit 4), not a crash
        raise BundleError(
            f"cannot read bundle {root}: {error}",
            fix="make every bundle file readable by the daemon's user (chmod -R a+rX BUNDLE) or copy it again",
        ) from error
    return Bundle(root=root, manifest=manifest)
