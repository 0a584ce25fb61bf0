"""Command line: one module per command group; parse -> call -> render. The only place that exits."""
