"""``python -m edgeopt``: the command line, as the ``edgeopt`` script runs it."""

from edgeopt.cli.main import main

if __name__ == "__main__":
    main()
