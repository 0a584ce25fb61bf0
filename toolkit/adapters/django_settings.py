"""Read a Django project's settings profile by running the probe in the app's own interpreter.

The toolkit and the app rarely share a virtualenv, so the settings are never imported here: the
standalone script ``django_probe.py`` (standard library and Django only) runs in a subprocess with
the app's Python and PYTHONPATH, under a time limit, and prints one JSON document that
:meth:`DjangoProfile.from_dict` parses. Every failure becomes one :class:`InventoryError` (exit 65)
naming the settings module, what went wrong and what to try.

A node on another host is read there (:func:`load_remote_profile`): ``ssh`` with the inventory's
connection variables (toolkit/adapters/ssh.py) runs the node's interpreter, as
``django_settings_user`` through ``sudo -n`` where set, and the probe, its masking rules and the
settings' environment go on stdin. A failure to reach the host is one TargetError line.
"""

from __future__ import annotations

import json
import os
import subprocess  # for the type of a finished run
import sys
from collections.abc import Mapping
from pathlib import Path

from toolkit.adapters import ssh, tool
from toolkit.domain.django import DjangoProfile
from toolkit.domain.django_nodes import DjangoSource
from toolkit.domain.errors import InventoryError

PROBE = Path(__file__).with_name("django_probe.py")
MASKING = Path(__file__).parent.parent / "domain" / "secrets.py"
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
        # The interpreter is the operator's; the probe reports its own failure (read by _parse).
        done = tool.run([interpreter, str(PROBE), settings_module], timeout, env=env, check=False)
    except tool.ToolError as exc:
        if exc.timed_out:
            raise _error(
                settings_module,
                f"importing the settings took more than {timeout:g} s; does the settings module "
                "connect to something or wait for input at import time?",
                node,
            ) from None
        raise _error(
            settings_module,
            f"cannot run the interpreter {interpreter!r} ({exc.why}); "
            "pass the app's Python (its virtualenv's bin/python)",
            node,
        ) from None
    return _parse(done, settings_module, pythonpath, interpreter, node)


def _parse(
    done: subprocess.CompletedProcess[str],
    settings_module: str,
    pythonpath: str,
    interpreter: str,
    node: str | None,
) -> DjangoProfile:
    """The profile the probe printed, or one InventoryError from its one-line stderr."""
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


# The script sent on stdin to the node's interpreter: it sets the environment and the import path
# from the JSON document embedded in it, then runs the probe with the masking rules' source (the
# node has no toolkit). Nothing of it is in the command line, so no secret shows in ``ps``.
_BOOTSTRAP = """\
import json, os, sys
_cfg = json.loads({config!r})
os.environ.pop("DJANGO_SETTINGS_MODULE", None)
os.environ.update(_cfg["env"])
os.environ["PYTHONPATH"] = os.pathsep.join(_cfg["pythonpath"])
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
sys.path[0:0] = _cfg["pythonpath"]
_g = {{"__name__": "toolkit_django_probe", "__file__": "/toolkit/adapters/django_probe.py",
      "TOOLKIT_MASKING_SOURCE": _cfg["masking"]}}
exec(compile(_cfg["probe"], "django_probe.py", "exec"), _g)
sys.exit(_g["main"](["django_probe.py", _cfg["module"]]))
"""
REMOTE_PYTHON = "python3"  # a node without django_python: the host's own Python


def remote_script(settings_module: str, pythonpath: str, extra_env: Mapping[str, str]) -> str:
    """The program the node's interpreter reads on stdin: the probe, its masking rules, the environment."""
    config = json.dumps(
        {
            "module": settings_module,
            "pythonpath": [p for p in pythonpath.split(":") if p],
            "env": dict(extra_env),
            "probe": PROBE.read_text(encoding="utf-8"),
            "masking": MASKING.read_text(encoding="utf-8"),
        }
    )
    return _BOOTSTRAP.format(config=config)


def remote_command(python: str | None, user: str | None) -> list[str]:
    """The command line run on the node: its interpreter reading the program from stdin, as ``user``.

    >>> remote_command("/venv/bin/python", "app")
    ['sudo', '-n', '-u', 'app', '--', '/venv/bin/python', '-']
    >>> remote_command(None, None)
    ['python3', '-']
    """
    command = [python or REMOTE_PYTHON, "-"]
    return ["sudo", "-n", "-u", user, "--", *command] if user else command


def load_remote_profile(src: DjangoSource, target: ssh.SshTarget, timeout: float) -> DjangoProfile:
    """Import ``src``'s settings on its node over SSH; raise TargetError (SSH) or InventoryError (probe)."""
    done = ssh.run(
        target,
        remote_command(src.python, src.user),
        remote_script(src.settings_module, src.pythonpath, dict(src.env)),
        timeout,
        "reading the Django settings",
    )
    return _parse(done, src.settings_module, src.pythonpath, src.python or REMOTE_PYTHON, src.node)


def read_node(src: DjangoSource, timeout: float, target: ssh.SshTarget | None = None) -> DjangoProfile:
    """One node's settings: over SSH on ``target``, else here with the node's interpreter.

    Raises InventoryError (the probe failed: exit 65's message) or TargetError (SSH failed).
    toolkit/gather.py reads every node concurrently, with the other targets, on the deadline runner.
    """
    if target is None:
        return load_profile(src.settings_module, src.pythonpath, src.python, timeout, dict(src.env), src.node)
    return load_remote_profile(src, target, timeout)
