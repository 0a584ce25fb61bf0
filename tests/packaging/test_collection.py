"""The collection outside the checkout: the tarball `make collection` builds, installed with
`ansible-galaxy collection install` into an empty collections path, in a fresh virtualenv that has
ansible-core and not the toolkit package (tests/packaging/collection_env.py).

Needs no lab, only the package index (or pip's cache); `make wheel` runs it with the wheel's tests. It
checks what ships (the roles pgbouncer, redis and toolkit, the filters and their generated sizing code;
not the lab-only roles, nor the toolkit package), and that the installed role sizes an example inventory
exactly as `toolkit plan` of the checkout does: the two share one sizing function.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator

import pytest

from tests.packaging.collection_env import BIN, FQCN, ROOT, CollectionEnv, install

pytestmark = pytest.mark.packaging

EXAMPLE = "example-tier"
PLAY = f"""\
- name: Size the inventory with the installed collection
  hosts: localhost
  gather_facts: false
  roles:
    - role: {FQCN}.toolkit
  tasks:
    - name: Write the plan the role computed
      ansible.builtin.copy:
        content: "{{{{ toolkit_plan | to_json }}}}"
        dest: "{{{{ plan_file }}}}"
        mode: "0600"
    - name: Call a filter by its full name from outside the collection
      ansible.builtin.copy:
        content: "{{{{ 'pgbouncer' | {FQCN}.toolkit_role_inputs | to_json }}}}"
        dest: "{{{{ inputs_file }}}}"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectionEnv]:
    env = install(tmp_path_factory.mktemp("collection"))
    shutil.copytree(ROOT / "inventory" / EXAMPLE, env.work / "inventory")
    yield env


def test_the_tarball_carries_the_collection_and_nothing_of_the_checkout(collection: CollectionEnv) -> None:
    (tarball,) = (collection.work.parent / "dist").glob("*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("pgbouncer_django", "toolkit")
    roles = {n.split("/")[1] for n in names if n.startswith("roles/") and n.count("/") >= 1}
    assert {"pgbouncer", "redis", "toolkit"} <= roles
    assert not roles & {"postgresql_lab", "django_demo"}, roles
    tops = {n.split("/")[0] for n in names}
    leaked = tops & {"toolkit", "tests", "lab", "bench", "scripts", "inventory", "molecule", ".lab", ".venv"}
    assert not leaked, leaked
    assert "playbooks/lab.yml" not in names
    assert "plugins/plugin_utils/sizing.py" in names


def test_the_installed_collection_has_no_lab_roles_and_the_venv_no_toolkit(collection: CollectionEnv) -> None:
    listed = collection.run("ansible-galaxy", "collection", "list", FQCN)
    assert listed.returncode == 0 and FQCN in listed.stdout, listed.stdout + listed.stderr
    roles = {p.name for p in (collection.installed / "roles").iterdir()}
    assert {"pgbouncer", "redis", "toolkit"} <= roles
    assert not roles & {"postgresql_lab", "django_demo"}, roles
    probe = collection.run("python", "-c", "import toolkit")
    assert probe.returncode == 1 and "No module named 'toolkit'" in probe.stderr, probe.stderr
    frozen = collection.run("python", "-m", "pip", "freeze")
    assert "ansible-core" in frozen.stdout and "toolkit" not in frozen.stdout, frozen.stdout


def test_the_installed_role_sizes_as_the_cli_does(collection: CollectionEnv) -> None:
    """The role (filters over plugin_utils) gives the plan `toolkit plan` of the checkout gives."""
    (collection.work / "size.yml").write_text(PLAY)
    plan_file, inputs_file = collection.work / "plan.json", collection.work / "inputs.json"
    proc = collection.run(
        "ansible-playbook",
        "-i",
        "inventory",
        "size.yml",
        "-e",
        json.dumps({"plan_file": str(plan_file), "inputs_file": str(inputs_file)}),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    cli = subprocess.run(
        [str(BIN / "toolkit"), "plan", "-i", f"inventory/{EXAMPLE}", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    role, checkout = json.loads(plan_file.read_text()), json.loads(cli.stdout)
    # The CLI adds notes from its checks (toolkit plan: plan_notes) to the sizing's own warnings.
    assert set(role.pop("warnings")) <= set(checkout.pop("warnings"))
    # The bypass lines follow the order of the inventory's mapping, which Ansible's hostvars and the
    # CLI's inventory reader do not keep alike: the same lines, in either order.
    for plan in (role, checkout):
        plan["budget"]["lines"].sort(key=lambda line: (line["item"], line["value"]))
    assert role == checkout
    assert "pgbouncer_default_pool_size" in json.loads(inputs_file.read_text())


def test_a_bad_inventory_fails_with_the_domain_message(collection: CollectionEnv) -> None:
    """The sizing error comes through the copy: the filter turns it into the play's one-line failure."""
    (collection.work / "size.yml").write_text(PLAY)
    proc = collection.run(
        "ansible-playbook",
        "-i",
        "inventory",
        "size.yml",
        "-e",
        json.dumps(
            {"database_max_connections": 5, "plan_file": "/nonexistent", "inputs_file": "/nonexistent"}
        ),
    )
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "toolkit sizing:" in proc.stdout + proc.stderr, proc.stdout[-3000:]
