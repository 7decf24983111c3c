"""Write a manifest: fill in each artifact's size and SHA-256, validate, then replace atomically."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge import __version__
from edge.bundle.loader import FORMAT_VERSION, MANIFEST_NAME, Bundle, load_bundle, sha256_of
from edge.errors import BundleError
from edge.schemas import schema_errors
from edge.trust.bundle_sig import SIGNATURE_NAME


def write_manifest(root: Path, manifest: dict[str, Any]) -> Bundle:
    """Hash every artifact in ``manifest``, validate it against the schema, write it and load the result.

    Fields ``format``, ``format_version``, ``created_at`` and ``created_by`` are filled in here; artifacts
    need only ``path`` and ``kind`` (plus their own details). A signature of the old manifest is removed.
    """
    document = dict(manifest)
    document["format"] = "expresso-edge-bundle"
    document["format_version"] = FORMAT_VERSION
    document.setdefault("created_at", datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    document["created_by"] = f"expresso-edge {__version__}"
    artifacts = []
    for record in document["artifacts"]:
        path = root / record["path"]
        if not path.is_file():
            raise BundleError(f"cannot record {path} in the manifest: no such file", fix="write the file first")
        artifacts.append({**record, "sha256": sha256_of(path), "bytes": path.stat().st_size})
    document["artifacts"] = artifacts
    problems = schema_errors(document, "manifest")
    if problems:
        raise BundleError("refusing to write an invalid manifest: " + "; ".join(problems[:5]), fix="this is a bug")
    tmp = root / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (root / SIGNATURE_NAME).unlink(missing_ok=True)  # it signed the old manifest: re-sign (python -m export sign)
    tmp.replace(root / MANIFEST_NAME)
    return load_bundle(root)
