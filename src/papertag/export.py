"""Exports: one record per paper as JSONL, CSV or Parquet, written so that a failed export never costs a good file."""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from .errors import InputError
from .jsonvalues import dumps
from .queries import Reader


def write_records(records: Iterable[dict[str, Any]], export_format: str, stream: TextIO) -> None:
    """JSONL or CSV records to a text stream; CSV joins each tag list with '; '."""
    if export_format == "jsonl":
        for record in records:
            stream.write(dumps(record, ensure_ascii=False) + "\n")
        return
    writer = None
    for record in records:
        if writer is None:
            writer = csv.DictWriter(stream, fieldnames=list(record))
            writer.writeheader()
        writer.writerow({key: "; ".join(value) if isinstance(value, list) else value for key, value in record.items()})
    if writer is None:
        csv.DictWriter(stream, fieldnames=["id"]).writeheader()  # no papers: a header alone


def export_file(reader: Reader, export_format: str, output: Path, database: Path) -> None:
    """Write the export to `output`, which must not be the database; a failure leaves any previous file as it was."""
    refuse_database_path(output, database)
    with replaced_on_success(output) as path:
        if export_format == "parquet":
            reader.export_relation().write_parquet(str(path))
        else:
            with path.open("w", encoding="utf-8", newline="") as stream:
                write_records(reader.export(), export_format, stream)


def write_text_file(text: str, output: Path, database: Path) -> None:
    """A document (a digest) to `output`, which must not be the database; replaced only once complete."""
    refuse_database_path(output, database)
    with replaced_on_success(output) as path:
        path.write_text(text, encoding="utf-8")


def refuse_database_path(output: Path, database: Path) -> None:
    """An export written over the database (or its write-ahead log) would destroy every paper in it. Resolved paths
    catch symlinks and '..'; samefile catches hard links."""
    target = output.resolve()
    log = database.with_name(database.name + ".wal")
    for protected, what in ((database, "the database"), (log, "the database's write-ahead log")):
        hard_link = target.exists() and protected.exists() and os.path.samefile(target, protected)
        if target == protected.resolve() or hard_link:
            raise InputError(f"--output {output} is {what} ({protected}); choose another file")


@contextmanager
def replaced_on_success(output: Path) -> Iterator[Path]:
    """Yield a path to write; it replaces `output` only if the block succeeds, so readers of `output` never see a
    half-written file. The temporary file sits next to the target, so the rename is atomic (same file system)."""
    target = output.resolve()  # through a symlink: replace the file it points to, keep the link
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        yield target  # a device or pipe (-o /dev/stdout, a FIFO) is written in place, never replaced by a file
        return
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as for open()
    try:
        yield temporary
        if target.exists():
            shutil.copymode(target, temporary)  # a private (0600) export stays private
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
