"""``python -m carenet.cli``: the same as the ``carenet`` command."""

from carenet.cli import main

main()
