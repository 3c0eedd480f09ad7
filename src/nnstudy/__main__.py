"""``python -m nnstudy`` is the ``nnstudy`` command."""

from nnstudy.cli import main

main()
