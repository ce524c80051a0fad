"""The data contract: every input table, its columns, their types and allowed values.

This module is the single source of truth for ingest (typing and quarantine), the
synthetic generator and the validation suites. DESIGN.md §3 describes it in prose.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of: "id", "text", "date", "integer", "number", "boolean"
    required: bool = True
    domain: tuple[str, ...] | None = None  # allowed values for categorical text columns
    minimum: float | None = None
    maximum: float | None = None
    # Set from evaluation.yaml `contract:` (see effective_tables):
    source: str | None = None  # the extract's name for the column, when it differs
    value_map: tuple[tuple[str, str], ...] = ()  # extract code -> contract value, applied before the checks
    extra: bool = False  # declared by the evaluation, not part of the built-in contract
    description: str = ""

    @property
    def header_name(self) -> str:
        """The column's name in the extract's header."""
        return self.source or self.name

    @property
    def duckdb_type(self) -> str:
        """The type of the column in the typed staging table."""
        return DUCKDB_TYPES[self.type]


DUCKDB_TYPES = {"id": "VARCHAR", "text": "VARCHAR", "date": "DATE", "integer": "BIGINT", "number": "DOUBLE",
                "boolean": "BOOLEAN"}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    # Columns that name rows of another table: column -> (table, column).
    references: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SEX = ("female", "male", "other")
ETHNIC_GROUPS = ("asian", "black", "mixed", "white", "other", "not_stated")
REGIONS = (
    "north_east", "north_west", "yorkshire", "east_midlands", "west_midlands",
    "east", "london", "south_east", "south_west", "wales",
)
INDEX_TYPES = ("custody_release", "community_sentence")
OFFENCE_GROUPS = (
    "violence", "sexual", "robbery", "theft", "burglary", "criminal_damage",
    "drugs", "public_order", "fraud", "motoring", "other",
)
DISPOSALS = ("custody", "community", "fine", "caution", "other")
PROGRAMME_TYPES = (
    "structured_mentoring", "peer_mentoring", "community_support", "rehabilitative_workshop",
)
PARTICIPATION_STATUS = ("completed", "withdrawn", "ongoing")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
ASSESSMENT_STAGES = ("baseline", "exit", "follow_up")
EMPLOYMENT_STATUS = ("employed", "training", "unemployed", "inactive")
ACCOMMODATION_STATUS = ("settled", "unsettled")
RESPONDENT_TYPES = ("participant", "mentor", "partner", "staff")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "people",
            (
                Column("person_id", "id"),
                Column("sex", "text", domain=SEX),
                Column("birth_year", "integer", minimum=1900, maximum=2015),
                Column("ethnic_group", "text", required=False, domain=ETHNIC_GROUPS),
                Column("region", "text", domain=REGIONS),
            ),
            key=("person_id",),
            description="One row per person: participants and the comparison pool.",
        ),
        Table(
            "index_events",
            (
                Column("person_id", "id"),
                Column("index_date", "date"),
                Column("index_type", "text", domain=INDEX_TYPES),
                Column("index_offence_group", "text", domain=OFFENCE_GROUPS),
                Column("sentence_months", "number", minimum=0, maximum=600),
                Column("prior_offences", "integer", required=False, minimum=0, maximum=500),
                Column("prior_custody", "integer", required=False, minimum=0, maximum=200),
                Column("age_first_offence", "integer", required=False, minimum=5, maximum=100),
                Column("risk_score", "number", required=False, minimum=0, maximum=100),
                Column("employment_at_index", "boolean", required=False),
                Column("accommodation_at_index", "boolean", required=False),
            ),
            key=("person_id", "index_date"),
            description="Start of an at-risk period: release from custody or start of a community sentence.",
            references={"person_id": ("people", "person_id")},
        ),
        Table(
            "offences",
            (
                Column("offence_id", "id"),
                Column("person_id", "id"),
                Column("offence_date", "date"),
                Column("proven_date", "date"),
                Column("offence_group", "text", domain=OFFENCE_GROUPS),
                Column("severity", "integer", minimum=1, maximum=5),
                Column("disposal", "text", domain=DISPOSALS),
            ),
            key=("offence_id",),
            description="One row per proven offence (conviction or caution).",
            references={"person_id": ("people", "person_id")},
        ),
        Table(
            "programmes",
            (
                Column("programme_id", "id"),
                Column("name", "text"),
                Column("programme_type", "text", domain=PROGRAMME_TYPES),
                Column("provider", "text"),
            ),
            key=("programme_id",),
            description="One row per programme.",
        ),
        Table(
            "participation",
            (
                Column("person_id", "id"),
                Column("programme_id", "id"),
                Column("start_date", "date"),
                Column("end_date", "date", required=False),
                Column("status", "text", domain=PARTICIPATION_STATUS),
                Column("sessions_offered", "integer", minimum=0, maximum=1000),
                Column("sessions_attended", "integer", minimum=0, maximum=1000),
                Column("mentor_id", "id", required=False),
            ),
            key=("person_id", "programme_id", "start_date"),
            description="One row per enrolment of a person in a programme.",
            references={
                "person_id": ("people", "person_id"),
                "programme_id": ("programmes", "programme_id"),
                "mentor_id": ("mentors", "mentor_id"),
            },
        ),
        Table(
            "mentors",
            (
                Column("mentor_id", "id"),
                Column("programme_id", "id"),
                Column("age_band", "text", domain=AGE_BANDS),
                Column("sex", "text", domain=SEX),
                Column("lived_experience", "boolean"),
                Column("trained_date", "date", required=False),
            ),
            key=("mentor_id",),
            description="One row per mentor.",
            references={"programme_id": ("programmes", "programme_id")},
        ),
        Table(
            "assessments",
            (
                Column("person_id", "id"),
                Column("programme_id", "id"),
                Column("assessment_date", "date"),
                Column("stage", "text", domain=ASSESSMENT_STAGES),
                Column("employment_status", "text", domain=EMPLOYMENT_STATUS),
                Column("accommodation_status", "text", domain=ACCOMMODATION_STATUS),
                Column("life_skills_score", "integer", minimum=1, maximum=10),
                Column("community_integration_score", "integer", minimum=1, maximum=10),
            ),
            key=("person_id", "programme_id", "stage"),
            description="One row per intermediate-outcome assessment.",
            references={
                "person_id": ("people", "person_id"),
                "programme_id": ("programmes", "programme_id"),
            },
        ),
        Table(
            "feedback",
            (
                Column("response_id", "id"),
                Column("programme_id", "id"),
                Column("respondent_type", "text", domain=RESPONDENT_TYPES),
                Column("response_date", "date"),
                Column("satisfaction", "integer", minimum=1, maximum=5),
                Column("relationship_quality", "integer", required=False, minimum=1, maximum=5),
            ),
            key=("response_id",),
            description="One row per stakeholder survey response.",
            references={"programme_id": ("programmes", "programme_id")},
        ),
    )
}

# Characteristics analysis.covariates derives from the offence history and the people table;
# they can be named as covariates beside any column of index_events and people.
DERIVED_COVARIATES = {
    "age_at_index": "numeric",
    "prior_proven_offences": "numeric",
    "prior_custodial_sentences": "numeric",
    "years_since_first_offence": "numeric",
    "female": "binary",
}
# Tables whose columns (built-in and extra) are carried into analysis.covariates.
COVARIATE_TABLES = ("index_events", "people")


def effective_tables(contract: Mapping[str, object] | None) -> dict[str, Table]:
    """The contract as an evaluation's settings adjust it (``Settings.contract``).

    For each table: ``columns`` renames a column (``from``), maps the extract's codes onto
    the contract's values (``values``), replaces the allowed values (``allowed``) and may make
    a column the extract does not hold optional (``required: false``);
    ``extra_columns`` appends the extract's own typed columns. Tables not named keep the
    built-in contract, so with no settings this is :data:`TABLES` itself.
    """
    if not contract:
        return TABLES
    tables = dict(TABLES)
    for name, table_settings in contract.items():
        table = TABLES[name]
        changed = {}
        for column_name, setting in table_settings.columns.items():
            column = table.column(column_name)
            domain = tuple(setting.allowed) if setting.allowed is not None else column.domain
            required = column.required if setting.required is None else setting.required
            changed[column_name] = replace(column, source=setting.from_, domain=domain, required=required,
                                           value_map=tuple(setting.values.items()))
        columns = tuple(changed.get(c.name, c) for c in table.columns)
        extras = tuple(
            Column(extra.name, extra.type, required=extra.required,
                   domain=tuple(extra.allowed) if extra.allowed is not None else None,
                   minimum=extra.minimum, maximum=extra.maximum, source=extra.from_,
                   value_map=tuple(extra.values.items()), extra=True, description=extra.description)
            for extra in table_settings.extra_columns
        )
        tables[name] = replace(table, columns=columns + extras)
    return tables


# Column names (lower-cased, punctuation folded to "_") that identify a person directly.
# A file carrying any of them is rejected whole: desist accepts pseudonymous data only.
DIRECT_IDENTIFIERS = frozenset({
    "name", "first_name", "forename", "forenames", "last_name", "surname", "full_name",
    "person_name", "date_of_birth", "dob", "birth_date", "address", "address_line_1",
    "street", "postcode", "post_code", "zip", "national_insurance_number", "ni_number",
    "nino", "national_id", "passport_number", "pnc_id", "pnc_number", "nhs_number",
    "email", "phone", "phone_number", "telephone", "notes", "comments", "free_text",
})
# Tables where a column called "name" is not about a person.
NAME_ALLOWED = frozenset({"programmes"})
