"""The Redis client runbooks' plans: raise maxclients within the plan and the open-file bound; end only
the app user's idle, ordinary clients, capped by --max."""

from __future__ import annotations

import pytest

from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.redis_clients import (
    RedisClient,
    plan_kill_idle_clients,
    plan_raise_maxclients,
    still_planned,
)

T = "redis@10.0.0.8:6379"


@pytest.mark.parametrize(
    ("live", "requested", "wanted"),
    [(20, None, 58), (58, 100, 100), (58, 992, 992), (10, 40, 40)],
)
def test_raise_plans_one_config_set_guarded_by_the_live_value(
    live: int, requested: int | None, wanted: int
) -> None:
    plan = plan_raise_maxclients(T, "cache1", live, 58, 24, 1024, requested)
    (action,) = plan.actions
    assert (action.target, action.kind) == (T, "config_set_maxclients")
    assert dict(action.args) == {"maxclients": wanted}
    assert dict(action.guard) == {"maxclients": live}


@pytest.mark.parametrize(("live", "requested"), [(58, None), (100, None), (58, 58), (200, 100)])
def test_raise_never_lowers(live: int, requested: int | None) -> None:
    plan = plan_raise_maxclients(T, "cache1", live, 58, 24, 1024, requested)
    assert plan.actions == ()
    assert any("nothing to raise" in n for n in plan.notes)


@pytest.mark.parametrize(("nofile", "requested"), [(1024, 993), (1024, 5000), (64, None)])
def test_above_the_open_file_bound_is_refused(nofile: int, requested: int | None) -> None:
    with pytest.raises(RefusedError) as refused:
        plan_raise_maxclients(T, "cache1", 20, 58, 24, nofile, requested)
    message = str(refused.value)
    assert f"{nofile} descriptors - 32 Redis keeps = {nofile - 32}" in message
    assert "nothing was done" in message and "redis_nofile" in message
    assert "\n" not in message


def test_above_the_plan_says_which_ops_slots_keep_it() -> None:
    notes = " ".join(plan_raise_maxclients(T, "cache1", 58, 58, 24, 1024, 300).notes)
    assert "set redis_ops_slots: 252 for cache1 in the inventory and deploy" in notes
    assert "CONFIG REWRITE is not used" in notes


def _client(
    cid: int, user: str = "app", idle: int = 600, flags: str = "N", subs: int = 0, name: str = ""
) -> RedisClient:
    return RedisClient(cid, f"10.0.0.{cid}:5{cid:04d}", user, name, idle + 5, idle, flags, subs)


def test_kill_plans_only_idle_ordinary_clients_of_the_app_user() -> None:
    clients = [
        _client(1),
        _client(2, idle=3),  # busy
        _client(3, user="toolkit"),  # another user (the ops user)
        _client(4, flags="S"),  # replica
        _client(5, flags="M"),  # master
        _client(6, flags="P", subs=1),  # pub/sub
        _client(7, flags="b"),  # blocked in BRPOP
        _client(8, flags="x"),  # in MULTI
        _client(9),  # the toolkit's own connection, whatever its user
        _client(10, subs=2),  # subscribed without the flag
        _client(11, idle=60),  # exactly --older-than
    ]
    plan = plan_kill_idle_clients(T, clients, own_id=9, app_user="app", older_than=60, max_clients=50)
    assert [a.args["id"] for a in plan.actions] == [1, 11]
    first = plan.actions[0]
    assert dict(first.args) == {"id": 1, "addr": "10.0.0.1:50001", "user": "app", "idle_s": 600}
    assert dict(first.guard) == {"addr": "10.0.0.1:50001", "user": "app", "idle_s_at_least": 60}
    left = next(n for n in plan.notes if n.startswith("left alone"))
    for why in ("1 busy", "1 replica", "1 master", "2 pub/sub", "1 blocked", "1 in MULTI"):
        assert why in left, left


def test_kill_narrows_to_a_client_name() -> None:
    clients = [_client(1, name="worker"), _client(2, name="web"), _client(3)]
    plan = plan_kill_idle_clients(
        T, clients, own_id=-1, app_user="app", older_than=60, max_clients=50, name="web"
    )
    assert [a.args["id"] for a in plan.actions] == [2]


def test_more_clients_than_max_is_refused() -> None:
    clients = [_client(i) for i in range(1, 6)]
    with pytest.raises(RefusedError, match=r"5 clients match, more than --max 4; nothing was done"):
        plan_kill_idle_clients(T, clients, own_id=-1, app_user="app", older_than=60, max_clients=4)


GUARD = {"addr": "10.0.0.1:50001", "user": "app", "idle_s_at_least": 60}


@pytest.mark.parametrize(
    ("now", "why"),
    [
        (None, "disconnected"),
        (RedisClient(1, "10.0.0.2:1", "app", "", 900, 600, "N", 0), "another client has the id"),
        (RedisClient(1, "10.0.0.1:50001", "toolkit", "", 900, 600, "N", 0), "another client has the id"),
        (RedisClient(1, "10.0.0.1:50001", "app", "", 900, 1, "N", 0), "now busy"),
        (RedisClient(1, "10.0.0.1:50001", "app", "", 900, 600, "b", 0), "blocked now"),
    ],
)
def test_a_client_that_changed_since_the_plan_is_skipped(now: RedisClient | None, why: str) -> None:
    assert why in (still_planned(now, GUARD) or "")


def test_the_planned_client_still_matches() -> None:
    assert still_planned(RedisClient(1, "10.0.0.1:50001", "app", "", 900, 600, "N", 0), GUARD) is None


def test_client_list_fields_are_read_by_name() -> None:
    fields = {"id": "12", "addr": "198.18.0.13:40000", "laddr": "x", "name": "web", "age": "30"}
    fields |= {
        "idle": "20",
        "flags": "N",
        "sub": "0",
        "psub": "1",
        "ssub": "0",
        "user": "app",
        "io-thread": "0",
    }
    got = RedisClient.from_fields(fields)
    assert got == RedisClient(12, "198.18.0.13:40000", "app", "web", 30, 20, "N", 1)
