"""Trust boundaries: Ed25519 keys (minisign formats), signed bundles, authenticated control and its policy.

See docs/security.md for the threat model. Private keys live on engineers' and operators' machines, never on a
device; a device holds only public keys (``[trust]`` in its configuration).
"""
