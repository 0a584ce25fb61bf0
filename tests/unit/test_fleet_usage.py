"""lab/fleet_usage.py: per-host CPU from cgroup v2 files (cpu.stat, cpu.pressure) laid out as the lab's."""

from __future__ import annotations

from pathlib import Path

from lab.fleet_usage import Reading, per_second, read


def _host(root: Path, name: str, usage_us: int, waited_us: int | None) -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text(f"usage_usec {usage_us}\nuser_usec 1\nsystem_usec 2\nnice_usec 0\n")
    if waited_us is not None:
        (d / "cpu.pressure").write_text(
            f"some avg10=0.00 avg60=0.10 avg300=0.27 total={waited_us}\n"
            "full avg10=0.00 avg60=0.08 avg300=0.23 total=1\n"
        )


def test_reads_every_host_and_leaves_out_one_without_cpu_stat(tmp_path: Path) -> None:
    _host(tmp_path, "db1", 8_000_000, 2_500_000)
    _host(tmp_path, "pgb1", 1_000_000, None)
    (tmp_path / "down").mkdir()
    (tmp_path / "cgroup.procs").write_text("")
    got = read(tmp_path)
    assert got == {"db1": Reading(8.0, 2.5), "pgb1": Reading(1.0, 0.0)}


def test_cores_and_wait_per_second_only_for_hosts_in_both_readings() -> None:
    before = {"db1": Reading(10.0, 1.0), "gone": Reading(1.0, 0.0)}
    after = {"db1": Reading(24.0, 8.0), "new": Reading(5.0, 0.0)}
    assert per_second(before, after, 7.0) == {"db1": {"cores": 2.0, "cpu_wait": 1.0}}
    assert per_second(before, after, 0.0) == {}


def test_no_lab_reads_nothing(tmp_path: Path) -> None:
    assert read(tmp_path / "absent") == {}
