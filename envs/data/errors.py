"""The one error type for bad input data: it names the file, the row and the problem."""
from __future__ import annotations


class DataError(ValueError):
    """Bad input data. ``str()`` is a single line: ``FILE: row N: problem``.

    ``row`` is whatever locates the problem for a person: a line number of a CSV
    file (1-based, counting banner and header lines) or a bar index; ``None``
    when the problem is not tied to a row (empty file, missing column).
    """

    def __init__(self, path: str, row: int | None, problem: str):
        self.path = str(path)
        self.row = row
        self.problem = " ".join(str(problem).split())  # always one line
        where = f"{self.path}: row {row}: " if row is not None else f"{self.path}: "
        super().__init__(where + self.problem)
