"""The options every command that reads an inventory shares, declared once (typer ``Annotated`` aliases).

Use them as ``inventory_path: InventoryOption = None``; :func:`toolkit.cli.context.load_context` takes
their values. ``-i`` is optional: without it the inventory is ansible's own default (ANSIBLE_INVENTORY,
else ``inventory =`` in ansible.cfg), and the commands that act on live systems say which one they read.
"""

from __future__ import annotations

from typing import Annotated

import typer

InventoryOption = Annotated[
    str | None,
    typer.Option(
        "-i",
        "--inventory",
        help="Inventory file or directory (default: ANSIBLE_INVENTORY, else inventory = in ansible.cfg), "
        "read by ansible-inventory within TOOLKIT_INVENTORY_TIMEOUT seconds (default 60; past it, exit 65).",
        show_default=False,
    ),
]
SecretsOption = Annotated[
    str | None,
    typer.Option(
        "--secrets",
        help="Directory of password files (default: $TOOLKIT_SECRETS_DIR, else the lab's .lab/).",
        show_default=False,
    ),
]
VaultPasswordFileOption = Annotated[
    str | None,
    typer.Option(
        "--vault-password-file",
        help="Vault password file, as ansible-playbook takes it (ansible.cfg's vault_password_file "
        "and ANSIBLE_VAULT_PASSWORD_FILE also apply).",
        metavar="FILE",
        show_default=False,
    ),
]
AskVaultPassOption = Annotated[
    bool, typer.Option("--ask-vault-pass", help="Ask for the vault password on the terminal.")
]
