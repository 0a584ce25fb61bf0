#!/usr/bin/env python
"""Management commands of the demo app (settings: demo.settings, node from TOOLKIT_DEMO_NODE)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
