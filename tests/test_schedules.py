"""Scheduled operation: the landing-file sensor and the monthly schedule."""
from __future__ import annotations

import datetime as dt
import hashlib
import os

import dagster as dg

from desist.provenance import input_fingerprint
from pipelines.publish import RESEARCH_DB
from pipelines.schedules import build_schedule_and_sensor


def _evaluate(sensor, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = sensor.evaluate_tick(context)
    return result.run_requests, result.skip_message, result.cursor


def test_sensor_fires_for_new_and_changed_files_only(make_settings, tmp_path):
    settings = make_settings()
    landing = settings.paths.landing
    (landing / "people.csv").write_text("person_id,sex,birth_year,ethnic_group,region\nA1,male,1990,white,london\n")
    _, sensor = build_schedule_and_sensor(settings)
    with dg.instance_for_test() as instance:
        requests, _, cursor = _evaluate(sensor, instance, None)
        assert len(requests) == 1 and requests[0].tags["desist/changed_files"] == "people.csv"

        requests, skip, cursor = _evaluate(sensor, instance, cursor)
        assert requests == [] and skip == "no new or changed landing file"

        # Touching a file without changing its content is not a change.
        os.utime(landing / "people.csv", ns=(1, 1))
        requests, skip, cursor = _evaluate(sensor, instance, cursor)
        assert requests == [] and skip == "no new or changed landing file"

        (landing / "people.csv").write_text(
            "person_id,sex,birth_year,ethnic_group,region\nA1,male,1990,white,london\nA2,female,1985,asian,wales\n")
        requests, _, cursor = _evaluate(sensor, instance, cursor)
        assert [r.tags["desist/changed_files"] for r in requests] == ["people.csv"]

        (landing / "offences_2024.parquet").write_bytes(b"PAR1")
        (landing / "ground_truth.json").write_text("{}")   # not a landing data file
        requests, _, cursor = _evaluate(sensor, instance, cursor)
        assert [r.tags["desist/changed_files"] for r in requests] == ["offences_2024.parquet"]


def test_first_look_starts_no_run_for_the_files_the_last_good_run_published(make_settings):
    settings = make_settings()
    landing = settings.paths.landing
    people = landing / "people.csv"
    people.write_text("person_id,sex,birth_year,ethnic_group,region\nA1,male,1990,white,london\n")
    (landing / "ground_truth.json").write_text("{}")  # not a landing file: not part of the fingerprint
    published = input_fingerprint([("people.csv", hashlib.sha256(people.read_bytes()).hexdigest())])
    _, sensor = build_schedule_and_sensor(settings)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=RESEARCH_DB, metadata={"input_fingerprint": published}))

        requests, skip, cursor = _evaluate(sensor, instance, None)
        assert requests == [] and skip == "the landing files are those the last successful run published"

        requests, skip, cursor = _evaluate(sensor, instance, cursor)
        assert requests == [] and skip == "no new or changed landing file"

        people.unlink()
        requests, _, cursor = _evaluate(sensor, instance, cursor)
        assert [r.tags["desist/changed_files"] for r in requests] == ["people.csv"]


def test_first_look_runs_when_the_files_differ_from_the_last_published(make_settings):
    settings = make_settings()
    (settings.paths.landing / "people.csv").write_text("person_id,sex,birth_year,ethnic_group,region\n")
    _, sensor = build_schedule_and_sensor(settings)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=RESEARCH_DB, metadata={"input_fingerprint": "an older set of files"}))
        requests, _, _ = _evaluate(sensor, instance, None)
        assert [r.tags["desist/changed_files"] for r in requests] == ["people.csv"]


def test_schedule_and_sensor_say_what_they_do(make_settings):
    settings = make_settings(schedule={"cron": "0 6 1 * *"})
    schedule, sensor = build_schedule_and_sensor(settings)
    assert "'0 6 1 * *'" in schedule.description
    assert str(settings.paths.landing) in sensor.description


def test_schedule_requests_a_run_of_the_whole_evaluation(make_settings):
    settings = make_settings(schedule={"cron": "0 6 1 * *"})
    schedule, _ = build_schedule_and_sensor(settings)
    assert schedule.cron_schedule == "0 6 1 * *"
    assert schedule.job_name == "evaluation"
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 12, 1, 6, 0))
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert len(requests) == 1
