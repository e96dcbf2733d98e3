"""``python -m tea``: the ``tea`` command (for hosts with tea installed as a package)."""

from tea._entry import main

main()
