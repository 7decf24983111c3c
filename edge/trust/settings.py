"""The ``[trust]`` configuration section: trusted public keys and what a remote control message may do.

Safe defaults: no keys (bundles are checked for corruption only, control messages need no signature), remote
consent *grants* refused (consent is given on the device: ``python -m edge consent``), pause, resume, revoke and
erase allowed. Once ``operator_keys`` lists a key, every remote command must carry a valid operator signature.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.control import Action
from edge.settings_base import StrictSettings
from edge.trust.keys import KeyFileError, PublicKey, public_key_from_setting

RemoteRule = Literal["refuse", "signed", "allow"]
_RULE_HELP = (
    "'refuse': never from the broker; 'signed': only with a valid operator signature (needs trust.operator_keys); "
    "'allow': any client "
)
_ALLOW_NOTE = "(with trust.operator_keys set, 'allow' needs a signature too)"


class ControlPolicy(StrictSettings):
    """Per action, whether a control message from the broker may do it (the device's own commands always may)."""

    pause: RemoteRule = Field("allow", description=f"pause processing. {_RULE_HELP}{_ALLOW_NOTE}")
    resume: RemoteRule = Field("allow", description=f"resume processing. {_RULE_HELP}{_ALLOW_NOTE}")
    grant: RemoteRule = Field(
        "refuse",
        description=f"consent granted=true (starts face processing). {_RULE_HELP}: default 'refuse', consent is "
        "given on the device with `python -m edge consent --config FILE grant`",
    )
    revoke: RemoteRule = Field("allow", description=f"consent granted=false. {_RULE_HELP}{_ALLOW_NOTE}")
    erase: RemoteRule = Field("allow", description=f"erase local state. {_RULE_HELP}{_ALLOW_NOTE}")

    def rule(self, action: Action) -> RemoteRule:
        """The configured rule of ``action``."""
        rule: RemoteRule = getattr(self, action)
        return rule


class TrustSettings(StrictSettings):
    """Which signatures the device trusts, and the remote control policy."""

    bundle_keys: list[str] = Field(
        default_factory=list,
        description="public keys (minisign RW... lines or absolute .pub paths) of engineers whose bundle signatures "
        "are trusted; when set, an unsigned or otherwise signed bundle is refused (exit 4)",
    )
    operator_keys: list[str] = Field(
        default_factory=list,
        description="public keys of operators whose control signatures are trusted; when set, unsigned control "
        "messages are refused",
    )
    max_clock_skew_s: float = Field(
        120.0, ge=0, le=3600, description="how far a signed message's issued_at may lie in the device's future"
    )
    max_validity_s: float = Field(
        86400.0, gt=0, le=30 * 86400, description="longest expires_at - issued_at accepted for a signed message"
    )
    control: ControlPolicy = Field(default_factory=ControlPolicy, description="what a remote control may do")

    @field_validator("bundle_keys", "operator_keys")
    @classmethod
    def _parseable(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                public_key_from_setting(value)
            except KeyFileError as error:  # pydantic reports it under the key, with the value
                raise ValueError(f"{error.message}; {error.fix}") from error
        return values

    @model_validator(mode="after")
    def _signed_needs_keys(self) -> TrustSettings:
        signed = [action for action in ControlPolicy.model_fields if self.control.rule(action) == "signed"]  # type: ignore[arg-type]
        if signed and not self.operator_keys:
            raise ValueError(
                f"control.{signed[0]} = 'signed' needs trust.operator_keys, or no remote message could ever do it "
                "(fix: list the operator's public key in trust.operator_keys, or choose 'refuse' or 'allow')"
            )
        return self

    def bundle_public_keys(self) -> list[PublicKey]:
        """The trusted bundle keys, parsed."""
        return [public_key_from_setting(value) for value in self.bundle_keys]

    def operator_public_keys(self) -> list[PublicKey]:
        """The trusted operator keys, parsed."""
        return [public_key_from_setting(value) for value in self.operator_keys]
