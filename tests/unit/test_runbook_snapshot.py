"""The snapshot runbook's plan and masking: no password and no DSN password reaches the bundle."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.runbooks.snapshot import MASK, mask, mask_text, plan_snapshot


def test_snapshot_needs_an_output_file() -> None:
    with pytest.raises(RunbookUsageError, match="needs -o FILE"):
        plan_snapshot(None, [])


def test_snapshot_plan_is_one_audited_write() -> None:
    plan = plan_snapshot("/tmp/x.json", ["redis@127.0.0.1:6379", "pgbouncer@127.0.0.1:6432"])
    (action,) = plan.actions
    assert (action.target, action.kind, dict(action.args)) == (
        "/tmp/x.json",
        "write_snapshot",
        {"file": "/tmp/x.json", "sources": 2},
    )
    assert any("0600" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:pw@127.0.0.1:5432/app", "postgresql://app:****@127.0.0.1:5432/app"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
        ("host=127.0.0.1 password='a b' dbname=app", "host=127.0.0.1 password=**** dbname=app"),
        ("host=127.0.0.1 PASSWORD=x", "host=127.0.0.1 PASSWORD=****"),
        ("no secret here", "no secret here"),
    ],
)
def test_dsn_passwords_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_secret_keys_are_masked_but_not_settings_that_only_mention_passwords() -> None:
    data = {
        "password": "x",
        "auth_password": "y",
        "requirepass": "z",
        "password_encryption": "scram-sha-256",
        "empty_password": "",
        "nested": [{"redis_password": "q", "port": 1}],
    }
    assert mask(data) == {
        "password": MASK,
        "auth_password": MASK,
        "requirepass": MASK,
        "password_encryption": "scram-sha-256",
        "empty_password": "",
        "nested": [{"redis_password": MASK, "port": 1}],
    }


# Secrets a snapshot meets in pg_stat_activity, SHOW CLIENTS and Redis data, none of them known to the
# toolkit (not one of its own passwords): the rules alone must mask them.
@pytest.mark.parametrize(
    ("query", "masked"),
    [
        ("ALTER ROLE app PASSWORD 'a''b c'", "ALTER ROLE app PASSWORD '****'"),
        (
            "CREATE ROLE x LOGIN ENCRYPTED PASSWORD 'x''''y' VALID UNTIL 'infinity'",
            "CREATE ROLE x LOGIN ENCRYPTED PASSWORD '****' VALID UNTIL 'infinity'",
        ),
        ("ALTER ROLE app PASSWORD 'truncated by track_activity_query_size", "ALTER ROLE app PASSWORD '****'"),
        ("/bin/sh -c 'PGPASSWORD=s3cret psql'", "/bin/sh -c 'PGPASSWORD=**** psql'"),
        ("REDISCLI_AUTH='s3 cret' redis-cli", "REDISCLI_AUTH=**** redis-cli"),
        ("redis-cli -a s3cret INFO", "redis-cli -a **** INFO"),
        (
            "SELECT dblink('host=db password=''a b'' dbname=x', 'SELECT 1')",
            "SELECT dblink('host=db password=**** dbname=x', 'SELECT 1')",
        ),
        ("host=db password='a b' dbname=x", "host=db password=**** dbname=x"),
        ("postgresql://app:p@s/s@db/app", "postgresql://app:****@db/app"),
    ],
)
def test_snapshot_masks_secrets_it_does_not_know(query: str, masked: str) -> None:
    bundle = mask({"postgres": {"pg_stat_activity": [{"query": query, "application_name": "psql"}]}})
    assert bundle["postgres"]["pg_stat_activity"][0]["query"] == masked


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40))
def test_a_known_secret_never_survives_anywhere(secret: str) -> None:
    data = {"rows": [{"query": f"ALTER ROLE app PASSWORD '{secret}'", "application_name": secret}]}
    values = [v for row in mask(data, [secret])["rows"] for v in row.values()]  # keys are column names
    assert secret not in json.dumps(values)
