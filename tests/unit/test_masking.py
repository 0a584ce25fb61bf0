"""toolkit.domain.secrets: a hostile table of secrets in text, locations and data; none survives."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.domain.secrets import MASK, is_secret_key, mask_text, mask_tree, mask_urls, split_locations

# Passwords with every character that ends a URL part, a conninfo value or a shell word.
HOSTILE = ["p,w", "p;w", "p#w", "p?w", "p@w", "p/w", "p:w", "a@b/c?d#e,f;g", "p%40w%2F", "x'y", 'x"y']

# (text, masked): every way a password shows up in a log line, an error or a query.
TABLE = [
    # URL userinfo, raw and percent-encoded
    ("postgresql://app:s3cret@db:5432/app", "postgresql://app:****@db:5432/app"),
    ("postgres://app:p%40ss%2Fw@db/app", "postgres://app:****@db/app"),
    ("postgresql://app:p@ss@db/app", "postgresql://app:****@db/app"),
    ("postgresql://app:p/ss?x#y@db/app", "postgresql://app:****@db/app"),
    ("redis://:s3cret@cache:6379/0", "redis://:****@cache:6379/0"),
    ("redis://s3cret@cache", "redis://****@cache"),
    ("rediss://app:s3cret@cache:6380/1", "rediss://app:****@cache:6380/1"),
    ("unix://:s3cret@/run/redis.sock?db=2", "unix://:****@/run/redis.sock?db=2"),
    ("postgresql://app@db/app", "postgresql://app@db/app"),
    ("redis://:@cache", "redis://:@cache"),
    ("connect to 'postgresql://u:pw@h/db' failed", "connect to 'postgresql://u:****@h/db' failed"),
    ("a=redis://:x@r1/0 b=redis://:y@r2/0", "a=redis://:****@r1/0 b=redis://:****@r2/0"),
    # URL queries
    ("redis://cache/1?password=x&db=1", "redis://cache/1?password=****&db=1"),
    ("redis://cache/1?db=1&password=a#b", "redis://cache/1?db=1&password=****"),
    ("redis://cache/1?db=1&pass=x", "redis://cache/1?db=1&pass=****"),
    # libpq conninfo
    ("host=db password=abc dbname=app", "host=db password=**** dbname=app"),
    ("host=db password='a b c' dbname=app", "host=db password=**** dbname=app"),
    ("host=db password = 'it\\'s x' dbname=app", "host=db password = **** dbname=app"),
    ("host=db PASSWORD=abc", "host=db PASSWORD=****"),
    ("host=db sslpassword=abc", "host=db sslpassword=****"),
    # environment assignments, shell-quoted as Ansible's -vvv shows them
    ("/bin/sh -c 'PGPASSWORD=abc psql -h db'", "/bin/sh -c 'PGPASSWORD=**** psql -h db'"),
    ("PGPASSWORD='a b' psql", "PGPASSWORD=**** psql"),
    ("PGPASSWORD='it'\"'\"'s' psql", "PGPASSWORD=**** psql"),
    ("REDISCLI_AUTH=abc redis-cli PING", "REDISCLI_AUTH=**** redis-cli PING"),
    ("TOOLKIT_REDIS_PASSWORD=abc toolkit doctor", "TOOLKIT_REDIS_PASSWORD=**** toolkit doctor"),
    # SQL
    ("ALTER ROLE app PASSWORD 'abc'", "ALTER ROLE app PASSWORD '****'"),
    ("ALTER ROLE app WITH ENCRYPTED PASSWORD 'it''s'", "ALTER ROLE app WITH ENCRYPTED PASSWORD '****'"),
    ("create role x password 'a'';DROP'", "create role x password '****'"),
    ("ALTER ROLE app PASSWORD E'a\\'b'", "ALTER ROLE app PASSWORD '****'"),
    ("ALTER ROLE app PASSWORD $$a'b$$ VALID UNTIL 'x'", "ALTER ROLE app PASSWORD '****' VALID UNTIL 'x'"),
    ("ALTER ROLE app PASSWORD $q$a$$b$q$;", "ALTER ROLE app PASSWORD '****';"),
    ("ALTER ROLE app PASSWORD 'cut short by track_activity_query_si", "ALTER ROLE app PASSWORD '****'"),
    ("ALTER ROLE app PASSWORD NULL", "ALTER ROLE app PASSWORD NULL"),
    # redis-cli and Redis ACLs
    ("redis-cli -h r -a s3cret PING", "redis-cli -h r -a **** PING"),
    ("redis-cli --pass s3cret PING", "redis-cli --pass **** PING"),
    ("redis-cli --askpass PING", "redis-cli --askpass PING"),
    (
        "ACL SETUSER app on >s3cret <old #abcd ~cache:* +@read",
        "ACL SETUSER app on >**** <**** #**** ~cache:* +@read",
    ),
    # a mapping in an error message
    (
        "ImproperlyConfigured: {'NAME': 'app', 'PASSWORD': 'pw x'}",
        "ImproperlyConfigured: {'NAME': 'app', 'PASSWORD': '****'}",
    ),
    ('{"password": "pw", "port": 1}', '{"password": "****", "port": 1}'),
    # look like secrets but are not
    ("password_encryption = scram-sha-256", "password_encryption = scram-sha-256"),
    ("auth_type = scram-sha-256", "auth_type = scram-sha-256"),
    (
        "SELECT usename, passwd FROM pgbouncer.get_auth($1)",
        "SELECT usename, passwd FROM pgbouncer.get_auth($1)",
    ),
    ("bypass=1 OLDPWD=/root", "bypass=1 OLDPWD=/root"),
    ("no secret here", "no secret here"),
]


@pytest.mark.parametrize(("text", "masked"), TABLE)
def test_hostile_table(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("password", HOSTILE)
@pytest.mark.parametrize(
    "template",
    [
        "redis://:{}@cache:6379/0",
        "redis://app:{}@cache:6379/0",
        "postgresql://app:{}@db/app",
        "dsn redis://app:{}@cache/0 failed",
        "host=db password='{}' dbname=app",
        "PGPASSWORD='{}' psql",
    ],
)
def test_hostile_passwords_never_survive(template: str, password: str) -> None:
    escaped = password.replace("'", "\\'") if "password='" in template else password
    if template.startswith("PGPASSWORD"):
        escaped = password.replace("'", "'\"'\"'")
    masked = mask_text(template.format(escaped))
    assert password not in masked
    assert MASK in masked


@pytest.mark.parametrize("password", HOSTILE)
def test_hostile_password_in_sql(password: str) -> None:
    sql = "ALTER ROLE app PASSWORD '{}' VALID UNTIL 'infinity'".format(password.replace("'", "''"))
    assert mask_text(sql) == "ALTER ROLE app PASSWORD '****' VALID UNTIL 'infinity'"


@pytest.mark.parametrize(
    ("location", "items"),
    [
        ("redis://:a,b@r1:6379/0", ["redis://:***@r1:6379/0"]),
        (
            "redis://:a;b@r1:6379/0;redis://:c,d@r2:6379/0",
            ["redis://:***@r1:6379/0", "redis://:***@r2:6379/0"],
        ),
        ("redis://:a@b@r1/0, redis://r2/0", ["redis://:***@r1/0", "redis://r2/0"]),
        ("redis://:p%2C%3B%40@r1/0", ["redis://:***@r1/0"]),
        ("redis://r1/0?password=a,b", ["redis://r1/0?password=***"]),
        ("10.0.0.1:11211;10.0.0.2:11211", ["10.0.0.1:11211", "10.0.0.2:11211"]),
        ("", []),
    ],
)
def test_split_locations_masks_before_splitting(location: str, items: list[str]) -> None:
    assert split_locations(location, "***") == items


def test_mask_urls_keeps_user_and_host() -> None:
    assert (
        mask_urls("redis://app:x@h1:1/0,redis://app:y@h2:2/0", "*")
        == "redis://app:*@h1:1/0,redis://app:*@h2:2/0"
    )


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("PASSWORD", True),
        ("auth_password", True),
        ("requirepass", True),
        ("masterauth", True),
        ("SECRET_KEY", True),
        ("db_pass", True),
        ("pwd", True),
        ("password_encryption", False),
        ("auth_type", False),
        ("auth_user", False),
        ("bypass", False),
        ("port", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_mask_tree_masks_keys_text_and_known_secrets() -> None:
    data = {
        "password": "x",
        "empty_password": "",
        "password_encryption": "scram-sha-256",
        "rows": [{"query": "ALTER ROLE a PASSWORD 'q'", "name": "known-one"}, ("redis://:z@h",)],
        "port": 6432,
    }
    assert mask_tree(data, ["known-one"]) == {
        "password": MASK,
        "empty_password": "",
        "password_encryption": "scram-sha-256",
        "rows": [{"query": "ALTER ROLE a PASSWORD '****'", "name": MASK}, ["redis://:****@h"]],
        "port": 6432,
    }


def test_longer_known_secret_is_masked_first() -> None:
    assert mask_text("abc abcdef", ["abc", "abcdef"]) == "**** ****"


_PASSWORD_CHARS = st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="'\\")


@given(st.text(alphabet=_PASSWORD_CHARS, min_size=6, max_size=30))
def test_generated_passwords_never_survive(password: str) -> None:
    texts = [
        f"redis://app:{password}@cache:6379/0",
        f"host=db password='{password}' dbname=app",
        f"ALTER ROLE app PASSWORD '{password}'",
        f"PGPASSWORD='{password}' psql",
        json.dumps({"PASSWORD": password}),
    ]
    for text in texts:
        assert password not in mask_text(text), text
