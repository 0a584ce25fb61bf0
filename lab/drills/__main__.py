"""``python -m lab.drills NAME|all``: run the incident drills from the checkout (``make drills``)."""

from lab.drills.cli import main

if __name__ == "__main__":
    main()
