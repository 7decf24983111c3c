"""Why a broker connection fails, in words an operator can act on: TLS, authentication or reachability.

``systemctl status``, the log and health tell these apart; an expired certificate is not a network outage.
"""

from __future__ import annotations

import ssl
from typing import Literal

from paho.mqtt.reasoncodes import ReasonCode

ProblemKind = Literal["tls", "auth", "unreachable"]

# OpenSSL X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code)
_EXPIRED, _NOT_YET_VALID = 10, 9
_UNKNOWN_CA = frozenset({18, 19, 20, 21, 2})  # self-signed, self-signed in chain, unable to get issuer (local), ...
_HOSTNAME_MISMATCH = frozenset({62, 64})  # host name, IP address
_BAD_CREDENTIALS, _NOT_AUTHORIZED = 134, 135
"""MQTT 5 CONNACK reason codes (paho maps MQTT 3.1.1 return codes 4 and 5 onto them)."""


def describe_connect_error(error: BaseException | None, where: str) -> tuple[ProblemKind, str]:
    """The kind and an actionable description of an exception raised while connecting to ``where``."""
    if isinstance(error, ssl.SSLCertVerificationError):
        code = error.verify_code
        if code == _EXPIRED:
            return "tls", f"TLS: the certificate of broker {where} has expired (fix: renew the broker's certificate)"
        if code == _NOT_YET_VALID:
            return "tls", f"TLS: the certificate of broker {where} is not valid yet (fix: check both clocks)"
        if code in _HOSTNAME_MISMATCH:
            return "tls", (
                f"TLS: the certificate of broker {where} is not for that host name (hostname mismatch) "
                "(fix: set mqtt.host to a name the certificate lists, or reissue it with that name)"
            )
        if code in _UNKNOWN_CA:
            return "tls", (
                f"TLS: the certificate of broker {where} is not signed by a trusted CA (unknown CA: "
                f"{error.verify_message}) (fix: point mqtt.tls.ca_file at the CA that signed it)"
            )
        return "tls", f"TLS: certificate of broker {where} rejected: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return "tls", (
            f"TLS: handshake with broker {where} failed ({error.reason or error}) (fix: is that port a TLS listener, "
            "and do client and broker share a TLS version?)"
        )
    detail = f" ({error})" if error is not None else ""
    return "unreachable", f"broker unreachable: {where}{detail}"


def describe_refusal(reason: ReasonCode, where: str) -> tuple[ProblemKind, str]:
    """The kind and description of a CONNACK that refused the connection."""
    if reason.value == _BAD_CREDENTIALS:
        return "auth", (
            f"authentication: broker {where} refused the user name or password (fix: check mqtt.username and "
            "mqtt.password_file against the broker's password file)"
        )
    if reason.value == _NOT_AUTHORIZED:  # Mosquitto answers a wrong password so too
        return "auth", (
            f"authentication: broker {where} refused this client (Not authorized: a wrong user name or password, "
            "or a user without rights) (fix: check mqtt.username and mqtt.password_file against the broker's "
            "password file and ACL; python -m edge identity prints what the broker expects)"
        )
    return "auth", f"broker {where} refused the connection: {reason}"
