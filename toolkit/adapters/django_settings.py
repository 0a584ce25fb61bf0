"""Read a Django project's settings profile by running the probe in the app's own interpreter.

The toolkit and the app rarely share a virtualenv, so the settings are never imported here: the
standalone script ``django_probe.py`` (standard library and Django only) runs in a subprocess with
the app's Python and PYTHONPATH, under a time limit, and prints one JSON document that
:meth:`DjangoProfile.from_dict` parses. Every failure becomes one :class:`InventoryError` (exit 65)
naming the settings module, what went wrong and what to try.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from toolkit.domain.django import DjangoProfile
from toolkit.domain.django_nodes import DjangoSource
from toolkit.domain.errors import InventoryError
from toolkit.domain.snapshot import TargetStatus

PROBE = Path(__file__).with_name("django_probe.py")
OPTION = "--django-settings"


def _error(module: str, why: str, host: str | None = None) -> InventoryError:
    variable = OPTION if host is None else "django_settings_module"
    return InventoryError(variable=variable, host=host, why=f"settings module {module!r}: {why}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def load_profile(
    settings_module: str,
    pythonpath: str,
    python: str | None = None,
    timeout: float = 30,
    extra_env: Mapping[str, str] | None = None,
    node: str | None = None,
) -> DjangoProfile:
    """Import ``settings_module`` with ``python`` (default: this interpreter) and return its profile.

    ``extra_env`` is added to the environment (a node's ``django_settings_env``); ``node`` names the
    inventory host in error messages.
    """
    interpreter = python or sys.executable
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the probe sets it from its argument
    try:
        done = subprocess.run(  # noqa: S603 (fixed argv, no shell; the interpreter is the operator's)
            [interpreter, str(PROBE), settings_module],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _error(
            settings_module,
            f"importing the settings took more than {timeout:g} s; does the settings module "
            "connect to something or wait for input at import time?",
            node,
        ) from None
    except OSError as exc:
        raise _error(
            settings_module,
            f"cannot run the interpreter {interpreter!r} ({exc.strerror or exc}); "
            "pass the app's Python (its virtualenv's bin/python)",
            node,
        ) from None
    if done.returncode != 0:
        detail = _last_line(done.stderr) or f"the probe exited with status {done.returncode}"
        hint = (
            f"check the module name, PYTHONPATH {pythonpath!r} and that {interpreter!r} is the app's Python"
        )
        if repr(settings_module) in detail:  # the probe's own line already names the module
            variable = OPTION if node is None else "django_settings_module"
            raise InventoryError(variable=variable, host=node, why=f"{detail}; {hint}")
        raise _error(settings_module, f"{detail}; {hint}", node)
    try:
        return DjangoProfile.from_dict(json.loads(_last_line(done.stdout)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _error(
            settings_module,
            f"the probe's output is not a profile document ({exc}); is the probe from this toolkit?",
            node,
        ) from None


def load_nodes(
    sources: Sequence[DjangoSource], timeout: float = 30
) -> tuple[dict[str, DjangoProfile], list[TargetStatus]]:
    """Read every node's settings concurrently: the profiles by node, and one status per node.

    A node whose settings cannot be read is reported in its status (doctor shows it as a target it
    could not read) instead of stopping the run: doctor often runs on a host without the app.
    """
    profiles: dict[str, DjangoProfile] = {}
    statuses: list[TargetStatus] = []

    def one(src: DjangoSource) -> tuple[DjangoProfile | None, TargetStatus]:
        started = time.monotonic()
        name = f"django:{src.node}"
        where = f"{src.node}:{src.settings_module}"
        try:
            profile = load_profile(
                src.settings_module, src.pythonpath, src.python, timeout, dict(src.env), src.node
            )
        except InventoryError as exc:
            elapsed = time.monotonic() - started
            return None, TargetStatus(name, "django", where, False, elapsed, "error", exc.why)
        elapsed = time.monotonic() - started
        return profile, TargetStatus(name, "django", where, True, elapsed)

    if not sources:
        return profiles, statuses
    with ThreadPoolExecutor(max_workers=min(8, len(sources))) as pool:
        for src, (profile, status) in zip(sources, pool.map(one, sources), strict=True):
            statuses.append(status)
            if profile is not None:
                profiles[src.node] = profile
    return profiles, statuses
