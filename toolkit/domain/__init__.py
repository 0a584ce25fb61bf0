"""Pure logic: topology, sizing, checks. Standard library only; no I/O, no project imports outside."""
