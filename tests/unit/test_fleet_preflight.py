"""The lab's preflight (lab/fleet_preflight.py): each problem a machine can have is one line naming what
is missing and what to do; a machine that has everything passes."""

from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"


def _lab(name: str) -> ModuleType:
    """lab/ is not part of the wheel: its modules import each other by bare name, from that directory."""
    if str(LAB) not in sys.path:
        sys.path.insert(0, str(LAB))
    return importlib.import_module(name)


pf = _lab("fleet_preflight")
STATE = Path("/var/lib/toolkit-lab")


def _one_line(message: str | None) -> str:
    assert message is not None
    assert "\n" not in message and message.startswith("fleet: ")
    return message


def test_the_doctests_pass() -> None:
    assert doctest.testmod(pf).failed == 0


def test_root_passes_and_anyone_else_is_told_to_use_sudo() -> None:
    assert pf.not_root_problem(0) is None
    assert _one_line(pf.not_root_problem(1000)).endswith("run 'sudo make lab'")


def test_missing_tools_name_the_apt_packages_to_install() -> None:
    missing = pf.missing_tools(["ip", "ssh", "ssh-keygen", "mount", "umount"])
    assert missing == ["debootstrap", "systemd-nspawn", "nft"]
    line = _one_line(pf.tools_problem(missing, apt_works=True, tried=False))
    assert line == (
        "fleet: debootstrap, systemd-nspawn, nft missing; "
        "run 'apt-get update && apt-get install -y debootstrap nftables systemd-container'"
    )
    assert "still missing after apt-get install" in _one_line(pf.tools_problem(missing, True, tried=True))


def test_without_apt_the_packages_are_named_for_another_way() -> None:
    line = _one_line(pf.tools_problem(["systemd-nspawn"], apt_works=False, tried=False))
    assert "apt-get is not available" in line and "systemd-container" in line


def test_nothing_missing_is_no_problem() -> None:
    assert pf.missing_tools(pf.TOOLS) == []
    assert pf.tools_problem([], apt_works=False, tried=False) is None


@pytest.mark.parametrize(
    ("free", "images", "hosts", "ok"),
    [
        (10 * 10**9, 2, 7, True),
        (pf.MARGIN_BYTES, 0, 0, True),
        (pf.MARGIN_BYTES - 1, 0, 0, False),
        (2 * pf.IMAGE_BYTES + 7 * pf.HOST_BYTES + pf.MARGIN_BYTES - 1, 2, 7, False),
    ],
)
def test_disk_counts_only_the_images_and_host_disks_still_to_make(
    free: int, images: int, hosts: int, ok: bool
) -> None:
    problem = pf.disk_problem(STATE, free, images, hosts)
    assert (problem is None) is ok
    if problem:
        assert f"({images} image(s) to build, {hosts} new host disk(s))" in _one_line(problem)
        assert "TOOLKIT_LAB_STATE" in problem


def test_disabled_user_namespaces_are_named_with_the_sysctl_that_enables_them() -> None:
    assert "sysctl -w user.max_user_namespaces=" in _one_line(pf.userns_problem("0\n"))
    assert pf.userns_problem("96365\n") is None


def test_cgroups_missing_or_read_only_are_named() -> None:
    assert "no cgroup2 hierarchy" in _one_line(pf.cgroup_problem({}))
    assert "read-only" in _one_line(pf.cgroup_problem({"/sys/fs/cgroup/unified": False}))
    assert pf.cgroup_problem({"/sys/fs/cgroup/unified": True}) is None


def test_no_permission_for_namespaces_quotes_the_kernel_and_says_where_to_run() -> None:
    line = _one_line(pf.netns_problem(1, "mount --make-shared /run/netns failed: Operation not permitted\n"))
    assert "(mount --make-shared /run/netns failed: Operation not permitted)" in line
    assert "CAP_SYS_ADMIN" in line
    assert pf.netns_problem(0, "") is None
