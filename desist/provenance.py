"""Provenance carried by every output: code version and a fingerprint of the input files."""
from __future__ import annotations

import hashlib
import json
import subprocess

from desist import __version__
from desist.config import PROJECT_ROOT, Settings


def code_version() -> str:
    """`git describe` of the project when it is a checkout (marked -dirty when edited), else the package version."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{described}" if described else __version__


def input_fingerprint(file_hashes: list[tuple[str, str]]) -> str:
    """One sha256 over the (file name, file sha256) pairs, independent of their order."""
    digest = hashlib.sha256()
    for name, sha in sorted(file_hashes):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def settings_record(settings: Settings) -> tuple[str, str]:
    """The analysis settings as canonical JSON, and its SHA-256.

    Paths, the settings file's location, the alert destinations and DuckDB's memory and threads
    are left out: they say where files live, who hears of a failure and how much of the machine a
    run may use, not how the data are analysed, so the same evaluation run on another machine keeps the same hash (and a webhook's secret never reaches a published file).
    """
    excluded = {"paths", "source", "alerts", "warehouse"}
    record = json.dumps(settings.model_dump(mode="json", exclude=excluded), sort_keys=True, separators=(",", ":"))
    return record, hashlib.sha256(record.encode()).hexdigest()
