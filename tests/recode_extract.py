"""Rewrite an extract in desist's contract as another system might send it: other column names
and other codes. The `contract:` settings in CONTRACT map it back, so the rewritten extract
runs with nothing changed but a settings file.

Usage::

    python tests/recode_extract.py SOURCE_FOLDER TARGET_FOLDER   # prints the settings to add
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import yaml

SEX_CODES = {"female": "F", "male": "M", "other": "X"}
REGION_CODES = {
    "north_east": "NE", "north_west": "NW", "yorkshire": "YH", "east_midlands": "EM", "west_midlands": "WM",
    "east": "EE", "london": "LDN", "south_east": "SE", "south_west": "SW", "wales": "WLS",
}
INDEX_TYPE_CODES = {"custody_release": "REL", "community_sentence": "COM"}
YES_NO = {"true": "Y", "false": "N"}

# table -> contract column -> (the extract's column name, contract value -> the extract's code)
RECODING: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "people": {
        "sex": ("Gender", SEX_CODES),
        "region": ("Area Code", REGION_CODES),
        "ethnic_group": ("Ethnicity", {}),
    },
    "index_events": {
        "index_date": ("Release Date", {}),
        "index_type": ("Start Type", INDEX_TYPE_CODES),
        "employment_at_index": ("Employed", YES_NO),
        "risk_score": ("OGRS Score", {}),
    },
    "offences": {
        "proven_date": ("Conviction Date", {}),
    },
}


CONTRACT = {
    table: {"columns": {
        column: {"from": header, **({"values": {code: value for value, code in codes.items()}} if codes else {})}
        for column, (header, codes) in columns.items()
    }}
    for table, columns in RECODING.items()
}


def recode(source: Path, target: Path) -> None:
    """Copy every file of `source` to `target`, renaming and recoding the columns of RECODING."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        table = path.name.removesuffix(".csv")
        if path.suffix != ".csv" or table not in RECODING:
            shutil.copy(path, target / path.name)
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column, (header, codes) in RECODING[table].items():
            if codes:
                frame[column] = frame[column].map(lambda value: codes.get(value, value))
            frame = frame.rename(columns={column: header})
        frame.to_csv(target / path.name, index=False)


if __name__ == "__main__":
    recode(Path(sys.argv[1]), Path(sys.argv[2]))
    print(yaml.safe_dump({"contract": CONTRACT}, sort_keys=False))
