"""The deployed PgBouncer holds the planned values, and the app logs in through it with SCRAM."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import app_connection, lab_secret
from toolkit.adapters.errors import TargetError
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget
from toolkit.domain.plan import PGBOUNCER_SIZED_SETTINGS


def _admin() -> AdminConsole:
    return AdminConsole(
        AdminTarget("127.0.0.1", 6432, "pgbouncer_admin", lab_secret("pgbouncer_admin_password"))
    )


def test_live_config_equals_the_plan(lab_plan: dict[str, Any]) -> None:
    planned = lab_plan["pgbouncer"]["lab"]
    with _admin() as console:
        live = console.config()
        databases = console.rows("SHOW DATABASES")
    for name in PGBOUNCER_SIZED_SETTINGS:
        assert int(live[name].value) == planned["settings"][name], name
    assert live["pool_mode"].value == planned["pool_mode"]
    assert live["listen_addr"].value == "127.0.0.1"
    assert live["auth_type"].value == "scram-sha-256"
    app = next(row for row in databases if row["name"] == "app")
    assert app["pool_size"] == planned["settings"]["default_pool_size"]


def test_stats_user_reads_but_cannot_administer() -> None:
    target = AdminTarget("127.0.0.1", 6432, "pgbouncer_stats", lab_secret("pgbouncer_stats_password"))
    with AdminConsole(target) as console:
        assert console.rows("SHOW POOLS")
        with pytest.raises(TargetError, match=r"admin access needed|not allowed|permission"):
            console.command("RELOAD")


def test_app_logs_in_through_pgbouncer_with_the_servers_scram_verifier() -> None:
    # PgBouncer can log into PostgreSQL with a SCRAM secret only if it is identical to the server's.
    with app_connection() as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("app",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


def test_wrong_password_is_reported_as_authentication() -> None:
    with pytest.raises(TargetError) as err:
        AdminConsole(AdminTarget("127.0.0.1", 6432, "pgbouncer_admin", "wrong-password"))
    assert str(err.value) == (
        "pgbouncer@127.0.0.1:6432: authentication failed during connecting; "
        "check the user and password in the inventory"
    )
    assert "wrong-password" not in str(err.value)
