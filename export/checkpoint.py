"""Load a checkpoint into a zoo model: a plain state_dict, a Lightning-style checkpoint or torchvision weights.

Keys may carry a prefix (``model.``, ``net.``, ``module.``...): the prefix under which most keys match the
model is stripped, and keys outside it (other parts of a Lightning module) are ignored with a log line. A
regression head whose shape differs (torchvision's 400-class Kinetics ``fc``) is re-initialised, loudly;
anything else that does not match is refused with the missing, unexpected and mis-shaped keys.
Checkpoints are read with ``weights_only=True``: a file that would need arbitrary code to unpickle is refused
in one line naming the pickled classes (PyTorch's own message, with its terminal escapes, is not passed on); an
ONNX file passed as a checkpoint is told apart and pointed to ``import-onnx``. ``KeyRename`` rules (``OLD=NEW``
for a prefix, ``re:PATTERN=REPLACEMENT`` for a regular expression) fix a near-miss key layout on the way in.
A checkpoint written by ``python -m export train`` also records how to rebuild its model (architecture,
options, frames, size) and its metrics: these come back as ``hints``.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.bundle import sha256_of
from edge.errors import BundleError
from export.zoo import Architecture

log = logging.getLogger(__name__)
_SHOWN = 8
HINT_KEYS = ("architecture", "options", "frames", "size", "metrics")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PICKLED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(BundleError):
    """A checkpoint cannot become a bundle: unreadable, or its keys or shapes do not fit the architecture."""


@dataclass(frozen=True)
class RawCheckpoint:
    """A checkpoint read from disk: its tensors, format and the rebuild hints it records."""

    path: Path
    sha256: str
    tensors: dict[str, torch.Tensor]
    format: str
    hints: dict[str, Any]
    renamed: tuple[str, ...] = ()
    """The key-renaming rules applied, as given."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What was loaded, for the manifest and the command's output."""

    path: Path
    sha256: str
    format: str
    prefix: str
    reinitialised: tuple[str, ...]
    ignored: tuple[str, ...]
    renamed: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyRename:
    """One key-renaming rule: a literal prefix ``old`` replaced by ``new``, or a regular expression substitution."""

    old: str
    new: str
    regex: bool = False

    @classmethod
    def parse(cls, text: str) -> KeyRename:
        """``OLD=NEW`` (prefix) or ``re:PATTERN=REPLACEMENT``; a malformed rule is refused with an example."""
        regex = text.startswith("re:")
        old, sep, new = text.removeprefix("re:").partition("=")
        if not sep or not old:
            raise CheckpointError(
                f"--rename-keys {text!r} is not OLD=NEW", fix="write e.g. --rename-keys fc.1.=fc. or 're:^net\\.=' "
            )
        if regex:
            try:
                re.compile(old)
            except re.error as exc:
                raise CheckpointError(f"--rename-keys {text!r}: bad regular expression: {exc}", fix="fix it") from exc
        return cls(old, new, regex)

    def apply(self, key: str) -> str:
        """``key`` after this rule."""
        if self.regex:
            return re.sub(self.old, self.new, key)
        return self.new + key[len(self.old) :] if key.startswith(self.old) else key

    def __str__(self) -> str:
        return f"{'re:' if self.regex else ''}{self.old}={self.new}"


def rename_keys(tensors: dict[str, torch.Tensor], rules: tuple[KeyRename, ...], where: Path) -> dict[str, torch.Tensor]:
    """``tensors`` with every rule applied to every key in turn; a rule matching nothing or a collision is refused."""
    renamed = dict(tensors)
    for rule in rules:
        new = {rule.apply(key): value for key, value in renamed.items()}
        if len(new) < len(renamed):
            raise CheckpointError(
                f"--rename-keys {rule} maps two keys of {where} onto one", fix="make the rule more specific"
            )
        if new.keys() == renamed.keys():
            raise CheckpointError(
                f"--rename-keys {rule} matches no key of {where} (keys: {', '.join(sorted(renamed)[:4])}, ...)",
                fix="write OLD as the start of the keys to rename, or use re:PATTERN=REPLACEMENT",
            )
        renamed = new
    return renamed


def _is_onnx(path: Path) -> bool:
    if path.suffix.lower() == ".onnx":
        return True
    try:
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # anything onnx cannot parse is simply not ONNX
        return False


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    """One clean line for a file ``torch.load(weights_only=True)`` refused: ONNX, pickled objects, or else."""
    if _is_onnx(path):
        return CheckpointError(
            f"{path} is an ONNX model, not a PyTorch checkpoint",
            fix=f"make a bundle of it with: python -m export import-onnx {path} --out BUNDLE",
        )
    text = _ANSI.sub("", str(exc))
    classes = sorted(set(_PICKLED_GLOBAL.findall(text)))
    if classes:
        return CheckpointError(
            f"checkpoint {path} cannot be read as tensors only: it pickles Python objects ({', '.join(classes)}) "
            "that only full unpickling, which can run any code in the file, could rebuild",
            fix="in a Python session you trust, keep just the weights: torch.save(torch.load(PATH, "
            "weights_only=False)['state_dict'], 'weights.pt') (for a model object: "
            "torch.save(model.state_dict(), PATH)), and pass that file",
        )
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return CheckpointError(
        f"checkpoint {path} cannot be read as tensors only: {first_line[:200]}",
        fix="save just the weights, e.g. torch.save(model.state_dict(), PATH), and pass that file",
    )


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist", fix="pass the path of a .pt/.pth/.ckpt file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def unwrap(checkpoint: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a checkpoint and its format: ``lightning`` (under ``state_dict``) or ``state_dict``."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint, kind = checkpoint["state_dict"], "lightning"
    else:
        kind = "state_dict"
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise CheckpointError(
            f"checkpoint {path} holds {type(checkpoint).__name__}, not a state_dict",
            fix="pass a state_dict or a Lightning checkpoint with a 'state_dict' entry",
        )
    tensors = {str(k): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(sorted(map(str, checkpoint))[:_SHOWN])
        raise CheckpointError(
            f"checkpoint {path} holds no tensors (top-level keys: {keys})",
            fix="pass a state_dict or a Lightning checkpoint with a 'state_dict' entry",
        )
    return tensors, kind


def best_prefix(keys: list[str], expected: set[str]) -> str:
    """The key prefix under which the most keys name a parameter of the model ('' for none)."""
    votes: Counter[str] = Counter()
    for key in keys:
        for cut in [0, *(i + 1 for i, char in enumerate(key) if char == ".")]:
            if key[cut:] in expected:
                votes[key[:cut]] += 1
    if not votes:
        return ""
    return min(votes, key=lambda prefix: (-votes[prefix], len(prefix)))


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN]) + (f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")
    return f"{len(keys)} {label}: {shown}"


def match_state_dict(
    model: nn.Module, tensors: dict[str, torch.Tensor], architecture: Architecture, where: Path
) -> tuple[dict[str, torch.Tensor], str, tuple[str, ...], tuple[str, ...]]:
    """Map checkpoint tensors onto ``model``: (state_dict to load, prefix, re-initialised keys, ignored keys)."""
    own = model.state_dict()
    prefix = best_prefix(list(tensors), set(own))
    ignored = tuple(sorted(k for k in tensors if not k.startswith(prefix)))
    found = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(k for k in own if k not in found and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in found if k not in own)
    misshapen = sorted(k for k in found if k in own and found[k].shape != own[k].shape)
    reinitialised = tuple(k for k in misshapen if k in architecture.head_keys)
    wrong_shape = [f"{k} {tuple(found[k].shape)} vs {tuple(own[k].shape)}" for k in misshapen if k not in reinitialised]
    if missing or unexpected or wrong_shape:
        problems = [
            _listing(label, keys)
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("wrong shapes", wrong_shape),
            )
            if keys
        ]
        raise CheckpointError(
            f"checkpoint {where} does not fit architecture {architecture.name!r}"
            + (f" (after stripping prefix {prefix!r})" if prefix else "")
            + ": "
            + "; ".join(problems),
            fix="pass --arch matching the checkpoint (python -m export onnx --help lists them) or the right file",
        )
    merged = {**own, **{k: v for k, v in found.items() if k not in reinitialised}}
    return merged, prefix, reinitialised, ignored


def read_checkpoint(path: str | Path, renames: tuple[KeyRename, ...] = ()) -> RawCheckpoint:
    """Read a checkpoint's tensors (keys renamed by ``renames``), format and hints (nothing unpickled beyond them)."""
    path = Path(path)
    content = _read(path)
    tensors, kind = unwrap(content, path)
    tensors = rename_keys(tensors, renames, path)
    hints = {k: content[k] for k in HINT_KEYS if isinstance(content, dict) and k in content}
    if kind == "lightning" and isinstance(content.get("format"), str):
        kind = content["format"]  # a checkpoint that names its own format (python -m export train does)
    return RawCheckpoint(path, sha256_of(path), tensors, kind, hints, tuple(map(str, renames)))


def load_checkpoint(
    model: nn.Module, checkpoint: str | Path | RawCheckpoint, architecture: Architecture
) -> CheckpointInfo:
    """Load a checkpoint (a path or what ``read_checkpoint`` read) into ``model`` with strict key matching."""
    raw = checkpoint if isinstance(checkpoint, RawCheckpoint) else read_checkpoint(checkpoint)
    path, kind = raw.path, raw.format
    state, prefix, reinitialised, ignored = match_state_dict(model, raw.tensors, architecture, path)
    model.load_state_dict(state, strict=True)
    if ignored:
        log.info("checkpoint %s: ignored %d keys outside prefix %r (e.g. %s)", path, len(ignored), prefix, ignored[0])
    if reinitialised:
        log.warning(
            "checkpoint %s: head %s has another shape (e.g. Kinetics' 400 classes); re-initialised it as this "
            "model's regression head (its outputs and scales): fine-tune before trusting any score",
            path,
            ", ".join(reinitialised),
        )
    if kind == "state_dict" and architecture.torchvision and not prefix:
        kind = "torchvision"
    return CheckpointInfo(path, raw.sha256, kind, prefix, reinitialised, ignored, raw.renamed)
