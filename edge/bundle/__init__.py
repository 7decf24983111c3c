"""Model bundles: a directory with ``manifest.json`` and the model files it lists with their SHA-256."""

from edge.bundle.loader import FORMAT_VERSION, MANIFEST_NAME, Bundle, load_bundle, sha256_of
from edge.bundle.manifest import Artifact, InputSpec, OutputSpec, Tile
from edge.bundle.writer import write_manifest

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Artifact",
    "Bundle",
    "InputSpec",
    "OutputSpec",
    "Tile",
    "load_bundle",
    "sha256_of",
    "write_manifest",
]
