"""The funders' HTML reports: reports/out/index.html and one page per programme."""

import dagster as dg

from pipelines.publish import RUN_INFO
from pipelines.resources import WAREHOUSE_POOL, Warehouse
from pipelines.validation import DATA_DOCS_FOLDER, data_docs_folder
from reports.build import TABLE_SOURCES, build_reports, load_report_data, missing_tables

REPORTS = dg.AssetKey(["reports", "html"])
# The assets that write the tables in TABLE_SOURCES: results/effects writes programmes_analysed,
# matched_sets, balance, sample_sizes, unmatched and effects; results/survival the Kaplan–Meier,
# log-rank, Cox, PH-test and RMST tables; results/diagnostics the study diagnostics;
# results/subgroup_effects and results/risk_model the "Who benefits?" and model-card tables.
REPORT_INPUTS = [
    dg.AssetKey(["staging", "programmes"]),
    dg.AssetKey(["analysis", "attrition"]),
    dg.AssetKey(["results", "effects"]),
    dg.AssetKey(["results", "survival"]),
    dg.AssetKey(["results", "diagnostics"]),
    dg.AssetKey(["results", "indicators"]),
    dg.AssetKey(["results", "subgroup_effects"]),
    dg.AssetKey(["results", "risk_model"]),
    RUN_INFO,
]


@dg.asset(
    key=REPORTS,
    deps=REPORT_INPUTS,
    pool=WAREHOUSE_POOL,  # reads the warehouse, so it waits for the single writer
    group_name="reports",
    description="Self-contained HTML reports for funders: a portfolio index with a forest plot and one page "
                "per programme, with disclosure control and provenance.",
)
def html_reports(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    with warehouse.connect(read_only=True) as con:
        data = load_report_data(con, settings)
    absent = missing_tables(data)
    if absent:
        context.log.warning(f"reports built without {', '.join(TABLE_SOURCES[name] for name in absent)}: "
                            "those sections read 'not available'")
    pages = build_reports(data, settings.paths.reports, folders={DATA_DOCS_FOLDER: data_docs_folder(settings)})
    return dg.MaterializeResult(metadata={
        "index": dg.MetadataValue.path(str(pages[0])),
        "pages": len(pages),
        "tables_not_available": ", ".join(TABLE_SOURCES[name] for name in absent) or "none",
    })
