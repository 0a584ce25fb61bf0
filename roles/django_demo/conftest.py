"""pytest collects roles/ for doctests; the demo app under files/ needs configured Django settings
to import, so it is left out (it is tested against the running lab by
tests/integration/test_django_demo_lab.py)."""

collect_ignore = ["files"]
