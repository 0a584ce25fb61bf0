# Generated from toolkit/domain/scram.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/scram.py and run `python scripts/generate_plugin_utils.py`.
"""SCRAM-SHA-256 verifiers in PostgreSQL's format (RFC 5802, RFC 7677).

PgBouncer can log into PostgreSQL with a SCRAM secret from its auth_file only if that secret is
identical to the server's (same salt, same iterations). Both the lab database role and the PgBouncer
role call :func:`scram_sha256_verifier` with the same inputs, so the two agree byte for byte.

The salt is derived from a secret seed and the user name with HMAC: deterministic (so re-running a
playbook changes nothing) but unpredictable without the seed, and independent of the password (a
salt derived from the password would hand out a fast hash of it).

>>> v = scram_sha256_verifier("pencil", "user", "seed")
>>> v.startswith("SCRAM-SHA-256$4096:")
True
>>> v == scram_sha256_verifier("pencil", "user", "seed")
True
>>> v == scram_sha256_verifier("pencil", "other", "seed")
False
"""

from __future__ import annotations

import base64
import hashlib
import hmac

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def derive_salt(username: str, seed: str) -> bytes:
    """Return a 16-byte salt for ``username``, unpredictable without ``seed``."""
    if not seed:
        raise ValueError("the SCRAM salt seed is empty; set a secret seed")
    return hmac.new(seed.encode(), b"scram-salt:" + username.encode(), hashlib.sha256).digest()[:16]


def verifier_from_salt(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """Return ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`` for ``password``.

    Checked against RFC 7677's test vector (user "user", password "pencil"):

    >>> salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    >>> verifier_from_salt("pencil", salt).split("$")[2]
    'WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU='
    """
    if iterations < 1:
        raise ValueError("SCRAM iterations must be at least 1")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def scram_sha256_verifier(password: str, username: str, seed: str) -> str:
    """Return the deterministic SCRAM verifier of ``username``/``password`` under ``seed``."""
    if not password:
        raise ValueError(f"the password of {username!r} is empty")
    return verifier_from_salt(password, derive_salt(username, seed))
