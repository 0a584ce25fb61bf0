"""Runbooks: pure plans of guarded remediation steps (what would be done, to whom, and why).

The executor (toolkit/runbooks/) reads the live state, asks these planners what to do, shows the
plan, acts only when told to, writes one audit record per action, and verifies the effect.
"""
