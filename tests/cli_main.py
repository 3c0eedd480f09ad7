"""``nnstudy ARGS`` through the command's entry point, ``nnstudy.cli.main``, in the test's own process:
for commands that fail, or finish, before they train, where a process each would cost more than the
command. Tests that need a real process (imports, signals, several workers) use the ``cli`` fixture."""

from __future__ import annotations

from nnstudy.cli import main


def run_main(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``nnstudy ARGS``; ``capsys`` is pytest's fixture."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
