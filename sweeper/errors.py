"""Errors meant for people: the CLI prints the message and exits with code 2, no traceback."""


class UserError(Exception):
    """Bad input from the user (a study file, a flag, a table). The message says where and what was expected."""


class StudyError(UserError):
    """A study file that does not validate; the message names the file and the field."""

    def __init__(self, path: str, field: str, problem: str):
        self.path, self.field, self.problem = path, field, problem
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {problem}")
