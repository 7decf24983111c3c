"""``python -m export inspect``: show a bundle's manifest, verify its files, say which backends here can run it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.backends import runnable
from edge.bundle import Bundle, load_bundle
from edge.cli_support import add_json_flag, print_report
from edge.scale import output_sections
from edge.trust.bundle_sig import read_signer
from edge.trust.keys import PublicKey, public_key_from_setting

NAME = "inspect"
HELP = "print a bundle's manifest summary, verify every file's SHA-256 and list the backends that can run it here"
EXAMPLES = """\
  python -m export inspect bundles/demo
  python -m export inspect bundles/demo --json | jq .backends
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``inspect``."""
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="KEY",
        help="public key (RW... line or .pub path) to check the signature against, as a device would (repeatable)",
    )
    add_json_flag(parser)


def backends_for(bundle: Bundle) -> dict[str, dict[str, Any]]:
    """Each backend with whether it can run here, why not, and the bundle precisions it could run."""
    return {
        key: {"available": bool(precisions), "precisions": precisions, "reason": reason}
        for key, (precisions, reason) in runnable(bundle).items()
    }


def signature_report(bundle: Bundle, trusted: list[PublicKey]) -> dict[str, Any] | None:
    """Who signed the manifest (None: unsigned) and whether it verifies against ``trusted``."""
    signer = read_signer(bundle.root, trusted)
    if signer is None:
        return None
    return {"key_id": signer.key_id, "signer": signer.name, "trusted_comment": signer.trusted_comment,
            "verified": signer.trusted if trusted else None}  # fmt: skip


def inspect_report(bundle: Bundle, trusted: list[PublicKey] | None = None) -> dict[str, Any]:
    """Everything ``inspect`` prints, for a bundle whose hashes already verified."""
    manifest = bundle.manifest
    return {
        "bundle": str(bundle.root),
        "hashes_verified": True,
        "format_version": manifest["format_version"],
        "created": f"{manifest['created_at']} by {manifest['created_by']}",
        "model": manifest["model"],
        "input": manifest["input"],
        "regions": [tile["region"] for tile in manifest["regions"]["tiles"]],
        "outputs": output_sections(manifest),
        "artifacts": manifest["artifacts"],
        "calibration": manifest.get("calibration"),
        "model_card": manifest["model_card"],
        "identity": bundle.identity,
        "signature": signature_report(bundle, trusted or []),
        "backends": backends_for(bundle),
        "notice": NOT_A_DIAGNOSTIC_DEVICE,
    }


def render(report: dict[str, Any]) -> str:
    """The report as lines for people."""
    model, shape = report["model"], report["input"]
    weights = model["weights"]
    lines = []
    if weights["source"] == "random":
        lines.append(f"WARNING: {weights.get('note', 'random weights')}")
    lines += [
        f"bundle        {report['bundle']} (format {report['format_version']}, {report['created']})",
        f"model         {model['name']} v{model.get('version', '0')}: {model['architecture']} "
        f"{json.dumps(model.get('architecture_options', {}))}",
        f"weights       {weights['source']}"
        + (
            f" sha256 {weights['checkpoint_sha256']} ({weights.get('checkpoint_format')})"
            if weights["source"] == "checkpoint"
            else ""
        ),
        f"size          {model['parameters']:,} parameters, {model['macs_per_window'] / 1e9:.3f} GMAC per window",
        f"input         {shape['name']} {shape['layout']} frames={shape['frames']} {shape['channels']}x"
        f"{shape['height']}x{shape['width']} at {shape['sample_fps']} fps, stride {shape['window_stride']}",
        f"regions       {', '.join(report['regions'])}",
        *(f"output        {o['name']} in {o['units']} {o['range']}" for o in report["outputs"]),
    ]
    lines.append(f"signature     {_signature_line(report['signature'])}")
    for artifact in report["artifacts"]:
        detail = " ".join(str(artifact[k]) for k in ("kind", "precision", "target") if artifact.get(k))
        lines.append(f"artifact      {artifact['path']} ({detail}) {artifact['bytes']:,} B sha256 ok")
    if report["calibration"]:
        lines.append(f"calibration   {json.dumps(report['calibration'])[:200]}")
    for key, info in report["backends"].items():
        verdict = f"can run {', '.join(info['precisions'])}" if info["available"] else f"cannot run: {info['reason']}"
        lines.append(f"backend       {key}: {verdict}")
    card = report["model_card"]
    lines.append(f"intended use  {card['intended_use']}")
    lines.append(f"training data {card['training_data']}")
    lines += [f"limitation    {item}" for item in card["limitations"]]
    return "\n".join(lines)


def _signature_line(signature: dict[str, Any] | None) -> str:
    if signature is None:
        return "none (a device with trust.bundle_keys refuses it: python -m export sign BUNDLE --key KEY)"
    verdict = {True: "verified against the given key", False: "does NOT verify against the given keys"}
    checked = verdict.get(signature["verified"], "not checked (pass --trusted-key)")
    return f"by {signature['signer'] or 'unnamed'} with key {signature['key_id']}: {checked}"


def run(args: argparse.Namespace) -> int:
    """Load (and so verify; with --trusted-key, the signature too) the bundle, then print the report."""
    trusted = [public_key_from_setting(str(value)) for value in args.trusted_key]
    bundle = load_bundle(args.bundle, trusted)
    print_report(inspect_report(bundle, trusted), as_json=args.json, render=render)
    return 0
