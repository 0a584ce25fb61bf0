"""The collection deploys onto the fleet as a user would run it: the built tarball installed with
ansible-galaxy into an empty collections path of a virtualenv that has ansible-core and nothing of this
project (tests/packaging/collection_env.py), run from a directory outside the checkout with no ansible.cfg
and no roles path.

It runs the collection's own site playbook by its full name (pgbouncer_django.toolkit.site: the input
check, then the roles pgbouncer_django.toolkit.pgbouncer and .redis) with inventory/lab and the lab's
secrets, limited to the PgBouncer and Redis hosts. `make lab` deployed the same roles from the checkout,
so the first run changes nothing or little, and the second must change nothing; afterwards each
PgBouncer and Redis still answers. Run it holding the lab lock; it leaves the fleet as it found it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from tests.fleet.conftest import ROOT, Ssh, recaps, secret
from tests.packaging.collection_env import FQCN, CollectionEnv, install

pytestmark = pytest.mark.fleet

PGBOUNCERS = {"pgb1": "198.18.0.11", "pgb2": "198.18.0.12"}
REDIS = {"redis1": "198.18.0.15", "redis2": "198.18.0.16"}
HOSTS = {*PGBOUNCERS, *REDIS}


@pytest.fixture(scope="module")
def collection(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectionEnv]:
    secret("app_password")  # the fleet is deployed: its secrets exist
    yield install(tmp_path_factory.mktemp("collection"))


def deploy(collection: CollectionEnv) -> dict[str, tuple[int, int, int]]:
    """Run the collection's site playbook on the PgBouncer and Redis hosts; return each host's recap."""
    proc = collection.run(
        "ansible-playbook",
        f"{FQCN}.site",
        "-i",
        str(ROOT / "inventory" / "lab"),
        "--limit",
        "pgbouncer:redis",
        timeout=1200,
        ANSIBLE_PIPELINING="True",
        ANSIBLE_FORKS="10",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    found = recaps(proc.stdout)
    assert set(found) == HOSTS, found
    print(f"deploy with the installed collection: changed { ({h: c for h, (c, _, _) in found.items()}) }")
    return found


def test_the_installed_collection_deploys_onto_the_fleet_and_changes_nothing(
    collection: CollectionEnv, ssh: Ssh
) -> None:
    assert not (collection.work / "ansible.cfg").exists()
    # make lab deployed these hosts from the checkout; the installed collection must render the very
    # same files and settings, so its one run changes nothing (a second run would only repeat that).
    run = deploy(collection)
    assert run == dict.fromkeys(HOSTS, (0, 0, 0)), f"the collection's run changed something: {run}"
    for host in HOSTS:
        units = ["pgbouncer", "pgbouncer-2"] if host == "pgb2" else ["pgbouncer"] if host == "pgb1" else []
        for unit in units or ["redis-server"]:
            proc = ssh(host, f"systemctl is-active {unit}")
            assert proc.stdout.strip() == "active", (host, unit, proc.stdout, proc.stderr)


def test_the_services_answer_after_the_collection_deploy(collection: CollectionEnv) -> None:
    for host, addr in PGBOUNCERS.items():
        with psycopg.connect(
            host=addr,
            port=6432,
            dbname="app",
            user="app",
            password=secret("app_password"),
            connect_timeout=5,
            sslmode="disable",
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,), host
    for host, addr in REDIS.items():
        app = redis.Redis(
            host=addr, port=6379, username="app", password=secret("redis_app_password"), socket_timeout=5
        )
        try:
            assert app.ping() is True, host
        finally:
            app.close()
