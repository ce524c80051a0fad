"""docs/bring-your-own-data.md, run as written: the Rossi financial-aid trial from lifelines'
load_rossi to reports, checked against the published Cox model (R survival::coxph, Fox and
Weisberg): aid coefficient -0.3794, SE 0.1914."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import duckdb
import pytest

from desist.config import PROJECT_ROOT
from desist.publish import data_dictionary

WALKTHROUGH = PROJECT_ROOT / "docs" / "bring-your-own-data.md"


def walkthrough_files() -> dict[str, str]:
    """The code blocks of the walkthrough that open with `# file: <path>`, by path."""
    blocks = re.findall(r"```(?:python|yaml)\n# file: (\S+)\n(.*?)```", WALKTHROUGH.read_text(), re.DOTALL)
    return {path: text for path, text in blocks}


def desist(*args: str, cwd, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("DESIST_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "desist.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_the_rossi_walkthrough_reproduces_the_published_cox_model(tmp_path):
    files = walkthrough_files()
    assert sorted(files) == ["rossi/evaluation.yaml", "rossi/prepare.py"]
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    subprocess.run([sys.executable, "rossi/prepare.py"], cwd=tmp_path, check=True, timeout=120)

    check = desist("check", "--config", "rossi/evaluation.yaml", cwd=tmp_path, home=tmp_path / "home")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "    found: person_id, sex (from gender), birth_year, region" in check.stdout
    assert ("    extra (declared in settings): prior_convictions, black, work_experience, married, parole"
            in check.stdout)
    assert "  people: 432 rows read, 432 loaded, 0 quarantined: 0.0% would be quarantined or rejected" in check.stdout
    assert ("  FA: 216 participants, 216 comparison people; meets the minimum of 60 participants"
            in check.stdout)
    assert "    covariate female dropped: every person analysed has the same value" in check.stdout

    run = desist("run", "--config", "rossi/evaluation.yaml", cwd=tmp_path, home=tmp_path / "home")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "rossi" / "reports" / "FA.html").exists()

    research = tmp_path / "rossi" / "research.duckdb"
    with duckdb.connect(str(research), read_only=True) as con:
        cox = {term: (coef, se) for term, coef, se in
               con.sql("SELECT term, coef, se FROM cox WHERE model = 'adjusted'").fetchall()}
        assert sorted(cox) == ["age_at_index", "black", "married", "parole", "prior_convictions", "treated",
                               "work_experience"]
        assert cox["treated"] == pytest.approx((-0.3794, 0.1914), abs=5e-5)
        assert cox["age_at_index"] == pytest.approx((-0.0574, 0.0220), abs=5e-5)
        assert cox["prior_convictions"] == pytest.approx((0.0915, 0.0286), abs=5e-5)
        # The extra columns enter the propensity model and the balance table...
        terms = {row[0] for row in con.sql("SELECT term FROM propensity_model").fetchall()}
        assert terms == {"(Intercept)", "age_at_index", "prior_convictions", "black", "work_experience", "married",
                         "parole"}
        balanced = {row[0] for row in con.sql("SELECT DISTINCT covariate FROM balance").fetchall()}
        assert {"prior_convictions", "work_experience"} <= balanced
        assert con.sql("SELECT message FROM programmes_analysed").fetchall() == [
            ("covariate female dropped: every person analysed has the same value",)]
        # load_rossi: 432 men, prio sums to 1289, wexp is 1 for 247
        assert con.sql("SELECT count(*), sum(prior_convictions), count(*) FILTER (WHERE work_experience) "
                       "FROM covariates").fetchall() == [(432, 1289.0, 247)]
    # ... and the data dictionary, with the meaning the settings give them.
    dictionary = data_dictionary(research)
    assert "| `prior_convictions` | DOUBLE | Convictions before this imprisonment (Rossi prio). |" in dictionary
    assert "| `work_experience` | BOOLEAN | Full-time work before prison. |" in dictionary
