"""Run the toolkit as ``python -m toolkit``."""

from toolkit.cli.launch import main

if __name__ == "__main__":
    main()
