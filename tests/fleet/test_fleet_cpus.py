"""The database host on its own CPU (lab/fleet_cpus.py): cpuset cgroups confine every process of a host,
the ones it starts afterwards too, and unpinning gives every host every CPU again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab import fleet_cpus

pytestmark = pytest.mark.fleet

ALL_CPUS = (fleet_cpus.CPUSET_ROOT / "cpuset.cpus").read_text().strip()
# The burner runs under timeout, so a lost SSH session cannot leave it spinning; field 39 of
# /proc/PID/stat is the CPU the process last ran on.
BURN = (
    "timeout 3 sh -c 'while :; do :; done' & t=$!; sleep 0.2; b=$(pgrep -P $t); "
    "for i in 1 2 3; do sleep 0.3; cut -d' ' -f39 /proc/$b/stat; done; kill $t"
)
BACKEND = (
    "sudo -n -u postgres psql -XAt -c \"select split_part(pg_read_file('/proc/self/stat'), ' ', 39)\" "
    "-c \"select pg_read_file('/proc/self/status')\" | sed -n -e 1p -e 's/^Cpus_allowed_list:[[:space:]]*//p'"
)
FRESH = "sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status"


def lines(ssh: Any, host: str, command: str) -> list[str]:
    proc = ssh(host, command)
    assert proc.returncode == 0, f"{host}: {command}: {proc.stderr.strip()}"
    return proc.stdout.split()


def assert_unpinned() -> None:
    assert set(fleet_cpus.current().values()) == {ALL_CPUS}
    assert not Path(fleet_cpus.CPUSET_ROOT, fleet_cpus.TOP).exists()


def test_pin_confines_every_host_and_what_it_starts_later(fleet: Any, ssh: Any) -> None:
    database = fleet_cpus.database_hosts()
    others = [h.name for h in fleet.hosts if h.name not in database]
    assert database and others
    with fleet_cpus.pinned("0", "1"):
        fleet_cpus.pin("0", "1")  # idempotent: a second pin changes nothing
        cpus = fleet_cpus.current()
        assert {h: cpus[h] for h in database} == dict.fromkeys(database, "0")
        assert {h: cpus[h] for h in others} == dict.fromkeys(others, "1")
        # A new PostgreSQL backend (forked by the postmaster after the pin) runs on 0 and may only run there.
        assert lines(ssh, database[0], BACKEND) == ["0", "0"]
        # A CPU burner started inside the database host: the kernel schedules it on CPU 0 only.
        assert lines(ssh, database[0], BURN) == ["0", "0", "0"]
        # A process started inside a PgBouncer host afterwards (ssh session, then sed) is on 1.
        assert lines(ssh, "pgb1", FRESH) == ["1"]
    assert_unpinned()
    assert lines(ssh, database[0], BACKEND)[1] == ALL_CPUS
    assert lines(ssh, "pgb1", FRESH) == [ALL_CPUS]
    fleet_cpus.unpin()  # idempotent
    assert_unpinned()


def test_pinned_unpins_on_keyboard_interrupt(fleet: Any) -> None:
    with pytest.raises(KeyboardInterrupt), fleet_cpus.pinned():
        assert fleet_cpus.current()[fleet_cpus.database_hosts()[0]] == "0"
        raise KeyboardInterrupt
    assert_unpinned()


def test_release_clears_what_a_killed_run_left(fleet: Any) -> None:
    """A run killed while pinned leaves the cpusets; lab/fleet.py up and down call release()."""
    fleet_cpus.pin()
    try:
        assert sorted(fleet_cpus.release()) == sorted(h.name for h in fleet.hosts)
    finally:
        fleet_cpus.unpin()
    assert_unpinned()
    assert fleet_cpus.release() == []
