"""Privacy by construction: device pseudonym, consent and erase, differential privacy, the k-threshold gate."""

from edge.privacy.consent import ConsentState, ConsentStore, erase
from edge.privacy.pseudonym import device_pseudonym

__all__ = ["ConsentState", "ConsentStore", "device_pseudonym", "erase"]
