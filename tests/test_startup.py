"""``nnstudy --help`` starts at once: what it imports, checked in a fresh process (not a timing test;
benchmarks/startup.py measures the time). And ``import nnstudy`` keeps its public API."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

#: Imports that cost seconds at start-up; none of them is needed to print help.
HEAVY = ("torch", "pandas", "optuna", "matplotlib", "scipy", "sqlalchemy")

PROBE = """
import json, sys
from nnstudy.cli import main
code = None  # main returns when the command succeeds
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def probe(*args: str) -> dict:
    p = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]) | {"stdout": p.stdout, "stderr": p.stderr}


@pytest.mark.parametrize("args", [
    ["--help"], ["-h"], ["--version"], ["train", "--help"], ["summary", "--help"], ["run", "--help"],
    ["status", "--help"], ["results", "--help"], ["report", "--help"], ["params", "--help"],
    ["budget", "--help"], ["data", "--help"], ["data", "fetch", "--help"],
])
def test_help_imports_no_heavy_library(args):
    r = probe(*args)
    assert r["code"] in (0, None) and r["heavy"] == [], r


def test_version_prints_the_package_version():
    import nnstudy

    r = probe("--version")
    assert r["stdout"].splitlines()[0] == f"nnstudy {nnstudy.__version__}"


def test_usage_lines_name_arguments_and_switches_show_no_type():
    def help_of(*command: str) -> str:
        return subprocess.run([sys.executable, "-m", "nnstudy", *command, "--help"], capture_output=True, text=True,
                              env={"COLUMNS": "160", "PATH": ""}).stdout

    assert re.search(r"Usage: nnstudy status \[OPTIONS\] \[STUDY\]\s", help_of("status"))  # optional: bracketed
    out = help_of("run")
    assert "Usage: nnstudy run [OPTIONS] STUDIES..." in out and "{studies}" not in out
    help_line = next(line for line in out.splitlines() if "--help" in line)
    assert "-h" in help_line and "<bool>" not in help_line
    assert not any("--quiet" in line and "<bool>" in line for line in out.splitlines())


@pytest.mark.parametrize(("args", "says"), [
    (["report", "--quiet"], "error: nnstudy report: No such option: --quiet (Possible options: --out); "
                            "see nnstudy report -h"),
    (["run"], "error: nnstudy run: Missing argument 'studies'; see nnstudy run -h"),
    (["bogus"], "error: nnstudy: No such command 'bogus'; see nnstudy -h"),
    (["train", "--epochs"], "error: nnstudy: Option '--epochs' requires an argument; see nnstudy -h"),
    (["data", "fetch", "--bogus"], "error: nnstudy data fetch: No such option: --bogus"),
    (["run", "--workers", "two", "x.toml"], "error: nnstudy run: Invalid value for '--workers': "),
])
def test_a_usage_error_is_one_line_naming_the_command_and_exit_2(args, says):
    """A mistyped command line is a user's mistake like any other: one line on stderr (not click's
    usage block and box), exit 2, nothing on stdout, whatever the terminal's width."""
    p = subprocess.run([sys.executable, "-m", "nnstudy", *args], capture_output=True, text=True,
                       env={"COLUMNS": "40", "PATH": ""})
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.splitlines()) == 1, p
    assert p.stderr.startswith(says) and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("args", [[], ["data"]])
def test_a_group_typed_alone_prints_its_help_once(args):
    p = subprocess.run([sys.executable, "-m", "nnstudy", *args], capture_output=True, text=True,
                       env={"COLUMNS": "120", "PATH": ""})
    assert p.returncode == 2 and (p.stdout + p.stderr).count("Usage: nnstudy") == 1, p
    assert "error:" not in p.stdout + p.stderr


def test_a_mistake_is_answered_without_the_heavy_libraries(tmp_path):
    # a bad study file, a missing study folder, a count of parameters: one line (or the count) from
    # the spec and the layer plan alone, never a wait for torch, pandas or optuna
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\nbogus = 1\n', encoding="utf-8")
    for args, code in ([["run", str(bad)], 2], [["status", str(tmp_path / "nowhere")], 2],
                       [["train", "--lr", "-0.1", "--out", str(tmp_path / "t")], 2],
                       [["train", "--set", "optimizer.lrate=0.1", "--out", str(tmp_path / "t")], 2],
                       [["summary", "--hidden", "-3"], 2],
                       [["params", "--model", "mlp", "--hidden", "100"], 0]):
        r = probe(*args)
        assert r["code"] in ((code,) if code else (0, None)) and r["heavy"] == [], (args, r)


def test_a_database_server_that_does_not_answer_is_said_without_torch_or_pandas(tmp_path):
    # connecting needs SQLAlchemy and Optuna's storage; the answer needs nothing more (port 1: refused)
    study = tmp_path / "s.toml"
    study.write_text('[study]\nname = "s"\n[scientific]\n"model.hidden" = [[16], [32]]\n', encoding="utf-8")
    url = "postgresql://nnstudy@127.0.0.1:1/nnstudy"
    for args in (["status", "--storage", url, "--study", "s"], ["worker", "--storage", url, "--study", "s"],
                 ["run", str(study), "--storage", url]):
        r = probe(*args)
        assert r["code"] == 2 and "127.0.0.1:1/nnstudy" in r["stderr"] and "unreachable" in r["stderr"], (args, r)
        assert not {"torch", "pandas", "matplotlib", "scipy"} & set(r["heavy"]), (args, r)


def test_import_nnstudy_is_light_and_its_api_resolves():
    code = (f"import sys, nnstudy; heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
            "names = [n for n in nnstudy.__all__ if getattr(nnstudy, n, None) is None]; "
            "import nnstudy.train.loop; print(heavy, names, callable(nnstudy.train), "
            "type(nnstudy.train).__name__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # nothing heavy on import; every name of __all__ resolves; importing the subpackage nnstudy.train
    # leaves nnstudy.train the function
    assert p.stdout.split() == ["[]", "[]", "True", "function"], p.stdout
