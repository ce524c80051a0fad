"""The ingest assets materialised by Dagster against a throw-away warehouse."""
from __future__ import annotations

import dagster as dg

from desist import warehouse
from desist.contract import TABLES
from pipelines.definitions import build_definitions
from pipelines.ingest import INGEST_SUMMARY, LANDING_FILES, STAGING, landing_files, staging_tables
from pipelines.resources import WAREHOUSE_POOL, Warehouse


def _landing(settings) -> None:
    landing = settings.paths.landing
    (landing / "people.csv").write_text(
        "person_id,sex,birth_year,ethnic_group,region\n"
        "P1,female,1980,white,london\nP2,male,1975,,wales\nP3,male,1990.5,white,east\n")
    (landing / "programmes.csv").write_text(
        "programme_id,name,programme_type,provider\nPG1,Bridges,peer_mentoring,Acme Trust\n")
    (landing / "offences.csv").write_text("offence_id,person_id,surname\nO1,P1,Smith\n")


def _materialisations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {event.asset_key: event.step_materialization_data.materialization.metadata
            for event in result.get_asset_materialization_events()}


def test_ingest_assets_materialise_raw_staging_and_summary(make_settings):
    settings = make_settings()
    _landing(settings)
    resources = {"warehouse": Warehouse(config_file=str(settings.source))}
    result = dg.materialize([landing_files, staging_tables], resources=resources)
    assert result.success
    metadata = _materialisations(result)
    assert set(metadata) == {LANDING_FILES, INGEST_SUMMARY, *STAGING.values()}
    assert metadata[LANDING_FILES]["files_new"].value == 3
    assert metadata[LANDING_FILES]["files_rejected"].value == 1
    assert metadata[LANDING_FILES]["rows_read"].value == 5
    people = metadata[dg.AssetKey(["staging", "people"])]
    assert (people["dagster/row_count"].value, people["rows_read"].value, people["rows_quarantined"].value) == (2, 3, 1)
    assert metadata[dg.AssetKey(["staging", "offences"])]["dagster/row_count"].value == 0
    assert metadata[INGEST_SUMMARY]["files_rejected"].value == 1

    with warehouse.connect(settings, read_only=True) as con:
        assert con.execute("SELECT person_id FROM staging.people ORDER BY 1").fetchall() == [("P1",), ("P2",)]
        assert con.execute("SELECT file_name, status, rows_read, rows_loaded, rows_quarantined, rows_rejected "
                           "FROM raw.ingest_summary ORDER BY file_name").fetchall() == [
            ("offences.csv", "rejected", 1, 0, 0, 1),
            ("people.csv", "loaded", 3, 2, 1, 0),
            ("programmes.csv", "loaded", 1, 1, 0, 0),
        ]

    again = _materialisations(dg.materialize([landing_files, staging_tables], resources=resources))
    assert again[LANDING_FILES]["files_unchanged"].value == 3
    assert again[LANDING_FILES]["files_new"].value == 0


def test_ingest_assets_share_the_warehouse_pool_and_are_in_the_definitions(make_settings):
    settings = make_settings()
    assert landing_files.op.pool == WAREHOUSE_POOL
    assert staging_tables.op.pool == WAREHOUSE_POOL
    assert set(staging_tables.keys) == {INGEST_SUMMARY, *(dg.AssetKey(["staging", t]) for t in TABLES)}
    assert {landing_files.group_names_by_key[LANDING_FILES],
            *staging_tables.group_names_by_key.values()} == {"ingest"}
    graph = build_definitions(str(settings.source)).resolve_asset_graph()
    for key in STAGING.values():
        assert graph.get(key).parent_keys == {LANDING_FILES}
