"""Which files a corpus of files holds, and the text of each: standard library only, since the config
check reads them before any job (at Snakemake's parse time)."""

from __future__ import annotations

import glob
from pathlib import Path

BINARY = "binary (it contains NUL bytes)"


def file_paths(patterns: list[str]) -> list[Path]:
    paths: set[Path] = set()
    for pattern in patterns:
        matched = [Path(p) for p in glob.glob(pattern, recursive=True)]
        files = [p for p in matched if p.is_file()]
        if not files:
            raise FileNotFoundError(f"corpus path '{pattern}' matches no file")
        paths.update(files)
    return sorted(paths)


def read_text_file(path: Path) -> tuple[str, str]:
    """A corpus file's text, and why it is left out ("" when it is kept): empty, or binary (a NUL byte,
    as git and grep decide). Text that is not valid UTF-8 is kept, each bad byte as U+FFFD. A file
    that cannot be read raises, naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(f"corpus file {path} is unreadable: {exc.strerror or exc}") from None
    if b"\0" in data:
        return "", BINARY
    # newlines translated as text mode reads them (\r\n and \r become \n), as the corpus always was
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return (text, "") if text.strip() else ("", "empty")
