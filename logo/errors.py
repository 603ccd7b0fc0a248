"""Errors a user can fix. The CLI prints them as one clear message, without a traceback."""


class LogoError(Exception):
    """Base class for errors caused by input (files, configs, arguments), not by bugs."""


class DatasetError(LogoError):
    """A dataset is missing, malformed or inconsistent; the message names each array at fault."""

    def __init__(self, path: str, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid dataset {self.path}:\n{lines}")
