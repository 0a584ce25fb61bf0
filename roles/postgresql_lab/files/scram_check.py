"""Which login roles' stored SCRAM verifiers do not prove the passwords given on stdin.

Run by the postgresql_lab role on the database host (as root): stdin is JSON {role: password}, argv
is the psql command that reads pg_authid as postgres. Prints a JSON list of the roles whose password
must be set: missing, without a password, or holding a verifier of another password. The passwords
never leave this process (psql gets the role names only, as a variable it quotes itself). The
verifier is checked as PostgreSQL checks a login (RFC 5802, RFC 7677), whatever its salt, so a
password a DBA set with a random salt is left alone.
"""

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys

VERIFIER = re.compile(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)")


def proves(password: str, verifier: str | None) -> bool:
    """True when ``verifier`` is PostgreSQL's SCRAM-SHA-256 secret of ``password``."""
    match = VERIFIER.fullmatch(verifier or "")
    if match is None:
        return False
    iterations, salt = int(match[1]), base64.b64decode(match[2])
    stored, server = base64.b64decode(match[3]), base64.b64decode(match[4])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored) and hmac.compare_digest(
        server_key, server
    )


def main() -> None:
    wanted: dict[str, str] = json.load(sys.stdin)
    # The names go in as a psql variable, quoted by psql (:'names'), with the query on stdin.
    query = (
        "SELECT coalesce(json_object_agg(rolname, rolpassword), '{}') FROM pg_catalog.pg_authid"
        " WHERE rolname = ANY (string_to_array(:'names', ','));"
    )
    names = ",".join(sorted(wanted))
    out = subprocess.run(  # noqa: S603 (the role's fixed psql argv, no shell)
        [*sys.argv[1:], "-v", f"names={names}"], input=query, capture_output=True, text=True, check=True
    )
    stored = json.loads(out.stdout)
    print(json.dumps(sorted(name for name, pw in wanted.items() if not proves(pw, stored.get(name)))))


if __name__ == "__main__":
    main()
