"""Incident drills against the lab's demo app: inject, detect, remediate, verify.

Lab code, run from the checkout as root (``python -m lab.drills NAME|all``, ``make drills``); never part
of the installed toolkit. Each drill is a module with NAME, TITLE and ``run(lab, seconds) ->
DrillReport``; the verdicts are pure, in :mod:`lab.drills.report`; the harness (demo nodes, extra app
instances under ``/opt/toolkit-demo``, ``runuser``) is :mod:`lab.drills.harness`, and the HTTP load with
wrk is :mod:`lab.drills.http_load`. They call the toolkit as an operator would, ``python -m toolkit``.
"""
