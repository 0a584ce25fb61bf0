"""Plans for the Redis client runbooks: raise ``maxclients`` within bounds, end idle clients of the app.

``maxclients``: the plan sizes it as ``2 x app clients + redis_ops_slots`` (toolkit.domain.sizing), and
Redis needs ``maxclients + 32`` open files (it keeps 32 descriptors for itself and lowers maxclients at
start when the limit cannot hold both; a CONFIG SET above that limit is refused). The runbook raises it
to the plan's value, or to an explicit ``--maxclients``, never above the open-file limit deployed for
the host (refused, exit 2), and never lowers it.

Idle clients: only connections of the app's ACL user, idle at least ``--older-than``, and never the
toolkit's own connection, a replica, a master, a pub/sub subscriber, a client blocked in a command
(BLPOP, a Celery worker's BRPOP) or one inside MULTI.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from toolkit.domain.errors import RefusedError
from toolkit.domain.numbers import as_int
from toolkit.domain.runbooks.base import Action, RunbookPlan

RESERVED_FDS = 32  # CONFIG_MIN_RESERVED_FDS in Redis's server.h (as toolkit.domain.sizing)
# CLIENT LIST flags of connections this runbook never ends: S replica, M master, P pub/sub,
# b blocked in a command, x inside MULTI/EXEC.
_PROTECTED_FLAGS = {"S": "replica", "M": "master", "P": "pub/sub", "b": "blocked", "x": "in MULTI"}
RAISE = "redis-raise-maxclients"
KILL = "redis-kill-idle-clients"


@dataclass(frozen=True)
class RedisClient:
    """One connection from CLIENT LIST."""

    id: int
    addr: str
    user: str
    name: str
    age: int  # seconds since it connected
    idle: int  # seconds since its last command
    flags: str
    subscriptions: int  # channels, patterns and shard channels it listens to

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> RedisClient:
        """Parse one CLIENT LIST entry by field name (Redis 7.0 and 8.0 add fields; none is assumed).

        >>> RedisClient.from_fields({"id": "7", "addr": "10.0.0.5:5000", "user": "app", "age": "9",
        ...                          "idle": "8", "flags": "N", "sub": "0", "psub": "0"}).idle
        8
        """

        def number(key: str) -> int:
            return max(0, as_int(fields.get(key)))  # CLIENT LIST's -1 means "none" (multi=-1)

        return cls(
            number("id"),
            str(fields.get("addr", "")),
            str(fields.get("user", "")),
            str(fields.get("name", "")),
            number("age"),
            number("idle"),
            str(fields.get("flags", "")),
            number("sub") + number("psub") + number("ssub"),
        )

    @property
    def ip(self) -> str:
        """The client's IP address without its port ("?" when CLIENT LIST gave none).

        >>> RedisClient(1, "198.18.0.13:41234", "app", "", 5, 5, "N", 0).ip
        '198.18.0.13'
        """
        return self.addr.rpartition(":")[0] or "?"

    def protected(self) -> str | None:
        """Why this connection is never ended here, or None.

        >>> RedisClient(1, "a:1", "app", "", 5, 5, "b", 0).protected()
        'blocked'
        >>> RedisClient(1, "a:1", "app", "", 5, 5, "N", 0).protected() is None
        True
        """
        for flag, why in _PROTECTED_FLAGS.items():
            if flag in self.flags:
                return why
        return "pub/sub" if self.subscriptions else None


def fd_bound(nofile: int) -> int:
    """The largest maxclients an open-file limit of ``nofile`` holds.

    >>> fd_bound(1024)
    992
    """
    return nofile - RESERVED_FDS


def plan_raise_maxclients(
    target: str,
    host: str,
    live: int,
    planned: int,
    demand: int,
    nofile: int,
    requested: int | None = None,
) -> RunbookPlan:
    """Raise ``maxclients`` from ``live`` to ``requested`` (else the plan's ``planned``) with CONFIG SET.

    Refused (exit 2) above the open-file bound; nothing to do when Redis already allows as many.

    >>> p = plan_raise_maxclients("redis@h:6379", "h", 20, 58, 24, 1024)
    >>> p.actions[0].args["maxclients"], p.actions[0].guard["maxclients"]
    (58, 20)
    >>> plan_raise_maxclients("redis@h:6379", "h", 58, 58, 24, 1024).actions
    ()
    >>> plan_raise_maxclients("redis@h:6379", "h", 58, 58, 24, 1024, 5000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.RefusedError: redis-raise-maxclients: maxclients 5000 on h is above ...
    """
    wanted = planned if requested is None else requested
    bound = fd_bound(nofile)
    source = "--maxclients" if requested is not None else "the plan's value"
    if wanted > bound:
        raise RefusedError(
            f"{RAISE}: maxclients {wanted} on {host} is above what its open-file limit holds ({nofile} "
            f"descriptors - {RESERVED_FDS} Redis keeps = {bound}); nothing was done: ask for {bound} or "
            f"less, or raise redis_nofile for {host} and deploy (that restarts Redis)"
        )
    notes = [
        f"live maxclients {live}; the plan's {planned} = 2 x {demand} app clients + redis_ops_slots; "
        f"open-file bound {bound} ({nofile} - {RESERVED_FDS})",
    ]
    if wanted <= live:
        notes.append(
            f"{source} {wanted} is not above the live {live}: nothing to raise (this runbook never lowers)"
        )
        return RunbookPlan(RAISE, (), tuple(notes))
    notes.append(_persist(host, wanted, planned, demand))
    action = Action(
        target,
        "config_set_maxclients",
        {"maxclients": wanted},
        f"{source}: {wanted - live} more client slot(s), within the open-file bound {bound}",
        guard={"maxclients": live},
    )
    return RunbookPlan(RAISE, (action,), tuple(notes))


def _persist(host: str, wanted: int, planned: int, demand: int) -> str:
    """How the raised value survives a restart and the next deploy.

    >>> _persist("h", 58, 58, 24)
    'CONFIG SET lasts until Redis restarts; the plan gives 58, and a deploy sets that'
    >>> "set redis_ops_slots: 52 for h in the inventory and deploy" in _persist("h", 100, 58, 24)
    True
    """
    head = "CONFIG SET lasts until Redis restarts"
    if wanted <= planned:
        return f"{head}; the plan gives {planned}, and a deploy sets that"
    return (
        f"{head}, and the next deploy sets the plan's {planned} again: to keep {wanted}, set "
        f"redis_ops_slots: {wanted - 2 * demand} for {host} in the inventory and deploy (the role owns "
        "redis.conf; CONFIG REWRITE is not used)"
    )


def plan_kill_idle_clients(
    target: str,
    clients: Iterable[RedisClient],
    *,
    own_id: int,
    app_user: str,
    older_than: float,
    max_clients: int,
    name: str | None = None,
) -> RunbookPlan:
    """CLIENT KILL (by id, user and address together) every client of ``app_user`` idle ``older_than``+.

    >>> C = RedisClient
    >>> cs = [C(1, "a:1", "app", "", 90, 60, "N", 0), C(2, "a:2", "app", "", 9, 0, "N", 0),
    ...       C(3, "a:3", "app", "", 90, 60, "b", 0), C(4, "c:4", "tk", "", 1, 0, "N", 0)]
    >>> [a.args["id"] for a in plan_kill_idle_clients("r", cs, own_id=4, app_user="app", older_than=30,
    ...                                                  max_clients=10).actions]
    [1]
    """
    actions: list[Action] = []
    left: Counter[str] = Counter()
    for c in clients:
        if c.id == own_id or c.user != app_user or (name is not None and c.name != name):
            continue
        if c.idle < older_than:
            left["busy"] += 1
            continue
        why = c.protected()
        if why:
            left[why] += 1
            continue
        actions.append(
            Action(
                target,
                "client_kill",
                {"id": c.id, "addr": c.addr, "user": c.user, "idle_s": c.idle},
                f"idle {c.idle} s (at least {older_than:g} s), connected {c.age} s ago",
                guard={"addr": c.addr, "user": c.user, "idle_s_at_least": older_than},
            )
        )
    if len(actions) > max_clients:
        raise RefusedError(
            f"{KILL}: {len(actions)} clients match, more than --max {max_clients}; nothing was done: narrow "
            "the run (--older-than, --application-name) or raise --max"
        )
    scope = f"user {app_user!r}" + (f", client name {name!r}" if name is not None else "")
    notes = [f"clients of {scope} idle at least {older_than:g} s; never the toolkit's own connection"]
    if left:
        kept = ", ".join(f"{n} {why}" for why, n in sorted(left.items()))
        notes.append(f"left alone: {kept}")
    return RunbookPlan(KILL, tuple(actions), tuple(notes))


def still_planned(now: RedisClient | None, guard: Mapping[str, object]) -> str | None:
    """Why the planned client may no longer be ended (None: it still matches the plan).

    >>> still_planned(None, {})
    'the client disconnected before the action'
    >>> still_planned(RedisClient(1, "a:1", "app", "", 9, 0, "N", 0), {"addr": "a:1", "user": "app",
    ...               "idle_s_at_least": 5})
    'the client ran a command 0 s ago (now busy)'
    """
    if now is None:
        return "the client disconnected before the action"
    if now.addr != guard.get("addr") or now.user != guard.get("user"):
        return "another client has the id now (address or user changed)"
    least = guard.get("idle_s_at_least")
    if isinstance(least, int | float) and now.idle < least:
        return f"the client ran a command {now.idle} s ago (now busy)"
    why = now.protected()
    return f"the client is {why} now" if why else None
