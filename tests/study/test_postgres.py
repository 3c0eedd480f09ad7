"""The same study on a real PostgreSQL server (started by the tests) as on the default SQLite file."""

from __future__ import annotations

from studyfiles import TUNED

from nnstudy.study import open_study
from nnstudy.study.results import TIMING_COLUMNS


def test_a_study_on_postgresql_equals_the_same_study_on_sqlite(tmp_path, study_file, cli, postgres_url):
    path = study_file(TUNED)
    on_pg = cli("run", str(path), "--dir", str(tmp_path / "pg"), "--storage", postgres_url, "--quiet", "--no-report",
                cwd=tmp_path)
    assert on_pg.returncode == 0, on_pg.stderr
    assert not (tmp_path / "pg" / "study.db").exists()  # the runs went to the server
    on_sqlite = cli("run", str(path), "--dir", str(tmp_path / "lite"), "--workers", "1", "--quiet", "--no-report",
                    cwd=tmp_path)  # several workers on PostgreSQL, one on SQLite: the same table
    assert on_sqlite.returncode == 0, on_sqlite.stderr

    def table(folder, storage=None):
        frame = open_study(folder, storage=storage).results()
        return frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns]).reset_index(drop=True)

    pg, lite = table(tmp_path / "pg", postgres_url), table(tmp_path / "lite")
    assert len(pg) == 2 * (3 + 2 + 2) and pg["run"].is_unique
    assert pg.equals(lite)
    again = cli("run", str(path), "--dir", str(tmp_path / "pg"), "--storage", postgres_url, "--quiet", "--no-report",
                cwd=tmp_path)
    assert again.returncode == 0 and "0 trained now" in again.stdout  # resumed from the server: nothing retrained
