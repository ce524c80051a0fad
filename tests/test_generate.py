"""The synthetic generator: determinism, the data contract, internal consistency and the truth file."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from desist.contract import TABLES
from desist.generate import PROGRAMMES, _cox_hazard_ratio, generate, write_extract

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
CUTOFF = pd.Timestamp("2025-06-30")
PEOPLE, SEED = 2_000, 7


@pytest.fixture(scope="module")
def extract():
    return generate(PEOPLE, SEED)


@pytest.fixture(scope="module")
def tables(extract):
    return extract.tables


@pytest.fixture(scope="module")
def relevant_index(tables):
    """Each enrolment with the index event whose enrolment window contains its start date."""
    pairs = tables["participation"].merge(tables["index_events"], on="person_id")
    window = pairs["start_date"].between(
        pairs["index_date"] - pd.Timedelta(days=90), pairs["index_date"] + pd.Timedelta(days=180)
    )
    return pairs[window].sort_values(["person_id", "index_date"]).drop_duplicates("person_id")


def test_same_seed_gives_identical_frames_and_truth(extract):
    again = generate(PEOPLE, SEED)
    assert again.truth == extract.truth
    for name, frame in extract.tables.items():
        pd.testing.assert_frame_equal(again.tables[name], frame, obj=name)


def test_different_seed_gives_different_data(extract):
    other = generate(PEOPLE, SEED + 1)
    assert not other.tables["people"].equals(extract.tables["people"])
    assert not other.tables["offences"].equals(extract.tables["offences"])
    assert other.truth["programmes"] != extract.truth["programmes"]


def test_every_table_has_exactly_the_contract_columns(tables):
    assert set(tables) == set(TABLES)
    for name, table in TABLES.items():
        assert list(tables[name].columns) == table.column_names, name


def test_values_lie_in_the_contract_domains_and_ranges(tables):
    for name, table in TABLES.items():
        frame = tables[name]
        for column in table.columns:
            values = frame[column.name]
            if column.required:
                assert values.notna().all(), f"{name}.{column.name} has nulls"
            present = values.dropna()
            if column.domain is not None:
                assert set(present) <= set(column.domain), f"{name}.{column.name}"
            if column.minimum is not None:
                assert present.min() >= column.minimum, f"{name}.{column.name}"
            if column.maximum is not None:
                assert present.max() <= column.maximum, f"{name}.{column.name}"


def test_keys_are_unique_and_references_resolve(tables):
    for name, table in TABLES.items():
        assert not tables[name].duplicated(list(table.key)).any(), name
        for column, (other, other_column) in table.references.items():
            present = tables[name][column].dropna()
            assert present.isin(tables[other][other_column]).all(), f"{name}.{column}"


def test_population_shape(tables):
    people, index = tables["people"], tables["index_events"]
    assert len(people) == PEOPLE
    assert set(index["person_id"]) == set(people["person_id"])
    assert index["index_date"].min() >= pd.Timestamp("2019-01-01")
    assert index["index_date"].max() <= pd.Timestamp("2024-12-31")
    assert (index.groupby("person_id").size() >= 2).any()
    assert set(index["index_type"]) == {"custody_release", "community_sentence"}
    assert index["risk_score"].between(0, 100).all()


def test_programmes_are_one_of_each_type_with_their_own_mentors(tables):
    programmes = tables["programmes"]
    assert list(programmes["programme_id"]) == ["P01", "P02", "P03", "P04"]
    assert sorted(programmes["programme_type"]) == sorted(TABLES["programmes"].column("programme_type").domain)
    mentors = tables["mentors"]
    assert set(mentors["programme_id"]) == set(programmes["programme_id"])
    assigned = tables["participation"].dropna(subset=["mentor_id"]).merge(
        mentors, on="mentor_id", suffixes=("", "_mentor"))
    assert (assigned["programme_id"] == assigned["programme_id_mentor"]).all()
    trained = assigned.dropna(subset=["trained_date"])
    assert (trained["trained_date"] <= trained["start_date"]).all()


def test_prior_counts_and_first_offence_age_agree_with_the_offences_table(tables):
    index, offences, people = tables["index_events"], tables["offences"], tables["people"]
    pairs = index[["person_id", "index_date"]].merge(offences, on="person_id")
    before = pairs[pairs["proven_date"] < pairs["index_date"]]
    key = ["person_id", "index_date"]
    counts = index[key].merge(before.groupby(key).size().rename("n").reset_index(), on=key, how="left")
    custody = before[before["disposal"] == "custody"].groupby(key).size().rename("c").reset_index()
    counts = counts.merge(custody, on=key, how="left").fillna(0)
    assert counts["n"].astype(int).tolist() == index["prior_offences"].astype(int).tolist()
    assert counts["c"].astype(int).tolist() == index["prior_custody"].astype(int).tolist()
    assert (index["prior_offences"] >= 1).all()  # the index offence is proven before the index date

    first = offences.groupby("person_id")["offence_date"].min().dt.year.rename("first_year")
    ages = index.merge(first, on="person_id").merge(people, on="person_id")
    assert (ages["first_year"] - ages["birth_year"] == ages["age_first_offence"]).all()


def test_offences_are_proven_after_they_are_committed_and_by_the_cutoff(tables):
    offences = tables["offences"]
    delay = (offences["proven_date"] - offences["offence_date"]).dt.days
    assert delay.min() == 0
    assert delay.max() <= 274  # at most 9 months
    assert (delay > 182).any()  # some take longer than the waiting period
    assert offences["proven_date"].max() <= CUTOFF
    assert set(offences["disposal"]) == set(TABLES["offences"].column("disposal").domain)


def test_participation_is_consistent(tables):
    part = tables["participation"]
    assert not part["person_id"].duplicated().any()  # at most one programme per person
    assert (part["sessions_attended"] <= part["sessions_offered"]).all()
    ended = part.dropna(subset=["end_date"])
    assert (ended["end_date"] >= ended["start_date"]).all()
    assert (ended["end_date"] <= CUTOFF).all()
    assert (part["end_date"].isna() == (part["status"] == "ongoing")).all()
    assert part["start_date"].max() <= CUTOFF
    assert set(part["status"]) == {"completed", "withdrawn", "ongoing"}
    share = part.groupby("programme_id").size() / PEOPLE
    assert share.between(0.015, 0.05).all(), share


def test_every_enrolment_starts_within_an_index_window(tables, relevant_index):
    assert len(relevant_index) == len(tables["participation"])
    offset = (relevant_index["start_date"] - relevant_index["index_date"]).dt.days
    assert offset.between(-90, 180).all()
    assert (offset >= 0).mean() > 0.5  # most enrolments follow the index date


def test_assessments_follow_the_participation_timeline(tables):
    part = tables["participation"].set_index(["person_id", "programme_id"])
    stages = tables["assessments"].pivot(index=["person_id", "programme_id"], columns="stage",
                                         values="assessment_date").reindex(part.index)
    assert (stages["baseline"] == part["start_date"]).all()
    has_exit = part["status"] != "ongoing"
    assert (stages["exit"].notna() == has_exit).all()
    assert (stages.loc[has_exit, "exit"] == part.loc[has_exit, "end_date"]).all()
    follow = stages["follow_up"].dropna()
    assert ((follow - stages.loc[follow.index, "exit"]).dt.days.between(90, 280)).all()
    assert tables["assessments"]["assessment_date"].max() <= CUTOFF


def test_life_skills_improve_more_with_engagement():
    tables = generate(20_000, 3).tables
    scores = tables["assessments"].pivot(index="person_id", columns="stage", values="life_skills_score").dropna(
        subset=["exit"])
    part = tables["participation"].set_index("person_id").loc[scores.index]
    change = scores["exit"] - scores["baseline"]
    assert change[part["status"] == "completed"].mean() > change[part["status"] == "withdrawn"].mean() + 0.5
    share = part["sessions_attended"] / part["sessions_offered"].where(part["sessions_offered"] > 0)
    assert np.corrcoef(share[share.notna()], change[share.notna()])[0, 1] > 0.2


def test_feedback_has_every_respondent_type_and_optional_relationship_quality(tables):
    feedback = tables["feedback"]
    assert set(feedback["programme_id"]) == {"P01", "P02", "P03", "P04"}
    assert set(feedback["respondent_type"]) == {"participant", "mentor", "partner", "staff"}
    assert feedback["relationship_quality"].isna().any()
    assert feedback["relationship_quality"].notna().any()
    assert feedback["response_date"].max() <= CUTOFF
    assert not feedback["response_id"].duplicated().any()


def test_truth_names_every_programme_with_one_exact_null_effect(extract):
    truth = extract.truth
    assert (truth["seed"], truth["people"], truth["cutoff"]) == (SEED, PEOPLE, "2025-06-30")
    assert list(truth["programmes"]) == ["P01", "P02", "P03", "P04"]
    null = [pid for pid, p in truth["programmes"].items() if p["hazard_ratio"] == 1.0]
    assert null == ["P03"]
    assert truth["programmes"]["P03"]["reoffending_rate_12m"]["effect"] == 0.0
    assert truth["programmes"]["P03"]["reoffences_per_person_12m"]["effect"] == 0.0
    assert truth["programmes"]["P03"]["marginal_hazard_ratio"] == 1.0
    for pid, p in truth["programmes"].items():
        rate = p["reoffending_rate_12m"]
        assert rate["effect"] == pytest.approx(rate["with_programme"] - rate["without_programme"], abs=1e-12)
        if p["hazard_ratio"] < 1:
            assert rate["effect"] < 0, pid
            assert p["reoffences_per_person_12m"]["effect"] < 0, pid
            assert p["marginal_hazard_ratio"] < 1, pid


def test_truth_cox_hazard_ratio_agrees_with_lifelines_on_tied_times():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    arm = rng.integers(0, 2, 400)
    latent = np.floor(rng.exponential(100, 400) * np.exp(-0.4 * arm))
    censor = rng.integers(20, 200, 400)
    event, time = latent <= censor, np.minimum(latent, censor)
    assert len(np.unique(time[event])) < event.sum() - 100  # many tied event times
    frame = pd.DataFrame({"time": time, "event": event.astype(int), "arm": arm})
    reference = np.exp(CoxPHFitter().fit(frame, "time", "event").params_["arm"])
    assert _cox_hazard_ratio(time, event, arm) == pytest.approx(reference, rel=1e-5)
    assert _cox_hazard_ratio(np.r_[time, time], np.r_[event, event], np.repeat([1, 0], 400)) == 1.0


def test_truth_with_programme_equals_the_rate_measured_from_the_data(extract, relevant_index):
    """The JDL 12-month measure, computed here from the tables, reproduces the truth's treated arm."""
    index = relevant_index[["person_id", "programme_id", "index_date"]]
    index = index[index["index_date"] + pd.DateOffset(months=18) <= CUTOFF]
    pairs = index.merge(extract.tables["offences"], on="person_id")
    counted = pairs[
        (pairs["offence_date"] >= pairs["index_date"])
        & (pairs["offence_date"] < pairs["index_date"] + pd.DateOffset(months=12))
        & (pairs["proven_date"] <= pairs["index_date"] + pd.DateOffset(months=18))
    ]
    per_person = index.merge(counted.groupby("person_id").size().rename("k").reset_index(), how="left").fillna(
        {"k": 0})
    for pid, group in per_person.groupby("programme_id"):
        truth = extract.truth["programmes"][pid]
        assert len(group) == truth["participants_with_complete_follow_up"]
        assert (group["k"] > 0).mean() == pytest.approx(truth["reoffending_rate_12m"]["with_programme"], abs=1e-12)
        assert group["k"].mean() == pytest.approx(truth["reoffences_per_person_12m"]["with_programme"], abs=1e-12)


def test_naive_comparison_is_biased_for_the_null_programme():
    """P03 selects low-risk people hard: its participants reoffend less although the programme does nothing."""
    extract = generate(20_000, 5)
    index = extract.tables["index_events"]
    part = extract.tables["participation"]
    p03 = index.merge(part[part["programme_id"] == "P03"], on="person_id")
    p03 = p03[(p03["start_date"] - p03["index_date"]).dt.days.between(-90, 180)]
    others = index[~index["person_id"].isin(part["person_id"])]
    assert p03["risk_score"].mean() < others["risk_score"].mean() - 10


def test_write_extract_is_byte_identical_for_a_seed_and_formats_csv_as_agreed(tmp_path):
    first = write_extract(tmp_path / "a", PEOPLE, SEED)
    write_extract(tmp_path / "b", PEOPLE, SEED)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted([f"{t}.csv" for t in TABLES] + ["ground_truth.json"])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first["rows"]["people"] == PEOPLE
    assert set(first["rows"]) == set(TABLES)

    lines = (tmp_path / "a" / "index_events.csv").read_text().splitlines()
    assert lines[0] == ",".join(TABLES["index_events"].column_names)
    cells = pd.DataFrame([line.split(",") for line in lines[1:]], columns=TABLES["index_events"].column_names)
    assert set(cells["employment_at_index"]) == {"true", "false", ""}
    assert cells["index_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert len(lines) - 1 == first["rows"]["index_events"]


def test_parquet_columns_are_typed(tmp_path):
    write_extract(tmp_path, PEOPLE, SEED, fmt="parquet")
    schema = pq.read_schema(tmp_path / "index_events.parquet")
    assert schema.field("index_date").type == pa.date32()
    assert schema.field("prior_offences").type == pa.int32()
    assert schema.field("risk_score").type == pa.float64()
    assert schema.field("employment_at_index").type == pa.bool_()
    assert schema.field("person_id").type == pa.string()
    assert pq.read_metadata(tmp_path / "offences.parquet").num_rows == len(generate(PEOPLE, SEED).tables["offences"])


def test_bad_arguments_are_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="people must be a positive whole number"):
        generate(0, 1)
    with pytest.raises(ValueError, match="seed must be a non-negative whole number"):
        generate(10, -1)
    with pytest.raises(ValueError, match="cutoff 2024-12-31 is before 2025-06-29"):
        generate(10, 1, cutoff=date(2024, 12, 31))
    with pytest.raises(ValueError, match="format must be one of csv, parquet"):
        write_extract(tmp_path, 10, 1, fmt="xlsx")
    write_extract(tmp_path, 10, 1, fmt="parquet")
    with pytest.raises(ValueError, match="already holds other files"):
        write_extract(tmp_path, 10, 1, fmt="csv")


def test_committed_sample_is_generate_20000_seed_2026(tmp_path):
    write_extract(tmp_path, 20_000, 2026)
    committed = sorted(p.name for p in SAMPLE.iterdir())
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    for name in committed:
        assert (SAMPLE / name).read_bytes() == (tmp_path / name).read_bytes(), name
    truth = json.loads((SAMPLE / "ground_truth.json").read_text())
    assert {pid: p["hazard_ratio"] for pid, p in truth["programmes"].items()} == {
        p.programme_id: p.hazard_ratio for p in PROGRAMMES
    }
    assert truth["programmes"]["P03"]["reoffending_rate_12m"]["effect"] == 0.0
    for pid, p in truth["programmes"].items():
        if pid != "P03":
            assert p["reoffending_rate_12m"]["effect"] < -0.03, pid
            # Unmodelled differences between people pull the marginal hazard ratio towards 1.
            assert p["hazard_ratio"] < p["marginal_hazard_ratio"] < 1, pid


def test_subgroup_effects_are_planted_only_when_asked_and_their_truth_adds_up():
    plain, planted = generate(20_000, 5), generate(20_000, 5, subgroup_effects=True)
    assert "effect_modification" not in plain.truth and "subgroups" not in plain.truth["programmes"]["P01"]
    pd.testing.assert_frame_equal(plain.tables["people"], planted.tables["people"])
    assert planted.truth["effect_modification"]["hazard_ratio_factor_by_risk_score_band"] == {
        "low": 1.3, "medium": 1.0, "high": 0.65}
    participants = planted.participants
    for pid, programme in planted.truth["programmes"].items():
        subgroups = programme["subgroups"]
        for variable in ("sex", "risk_score_band"):
            levels = subgroups[variable].values()
            assert sum(level["participants_with_complete_follow_up"] for level in levels) == \
                programme["participants_with_complete_follow_up"], (pid, variable)
        # the truth per subgroup is the mean of both potential outcomes over the same participants
        women = participants[(participants["programme_id"] == pid) & participants["eligible"]
                             & (participants["sex"] == "female")]
        assert subgroups["sex"]["female"]["reoffending_rate_12m"]["effect"] == pytest.approx(
            (women["reoffended_with"].astype(int) - women["reoffended_without"].astype(int)).mean(), abs=1e-12)
        high = participants[(participants["programme_id"] == pid) & participants["eligible"]
                            & (participants["risk_score"] >= 60)]
        assert subgroups["risk_score_band"]["high"]["participants_with_complete_follow_up"] == len(high)
    for pid in ("P01", "P02", "P04"):  # a hazard ratio below 1 falls further for high-risk people
        bands = planted.truth["programmes"][pid]["subgroups"]["risk_score_band"]
        assert bands["high"]["reoffending_rate_12m"]["effect"] < bands["low"]["reoffending_rate_12m"]["effect"], pid
    # the null programme does harm in the low band, where its hazard ratio becomes 1.3
    p03 = planted.truth["programmes"]["P03"]["subgroups"]["risk_score_band"]
    assert p03["low"]["reoffending_rate_12m"]["effect"] > 0.01


def test_truth_holds_the_auc_of_the_true_risk():
    risk = json.loads((SAMPLE / "ground_truth.json").read_text())["risk_model"]
    # People of the sample never enrolled, with complete 12-month follow-up on their first index event.
    assert risk["people"] == 14_554
    assert risk["true_auc"] == pytest.approx(0.72606, abs=1e-5)
    assert list(risk["true_auc_by_index_year"]) == ["2019", "2020", "2021", "2022", "2023"]
    assert risk["true_auc_by_index_year"]["2023"] == pytest.approx(0.74428, abs=1e-5)
    assert risk["reoffending_rate_12m"] == pytest.approx(0.31476, abs=1e-5)
def test_hidden_confounding_is_opt_in_and_never_written_to_the_extract():
    plain = generate(people=3000, seed=11)
    confounded = generate(people=3000, seed=11, hidden_confounding=1.5)
    assert "hidden_confounding" not in plain.truth
    assert confounded.truth["hidden_confounding"]["selection_log_odds_per_sd"] == -1.5
    # the same people and columns: the instability itself is in no table
    pd.testing.assert_frame_equal(plain.tables["people"], confounded.tables["people"])
    for name, table in plain.tables.items():
        assert list(confounded.tables[name].columns) == list(table.columns), name
    # it brings offences before the index dates, and enrolment follows it
    assert len(confounded.tables["offences"]) > len(plain.tables["offences"])
    assert len(confounded.tables["participation"]) != len(plain.tables["participation"])
