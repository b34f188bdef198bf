"""Errors meant for people: the CLI prints the message and exits with code 2, no traceback."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """Bad input from the user (a study file, a flag, a table). The message says where and what was expected."""


class StudyError(UserError):
    """A study file that does not validate; the message names the file and the field."""

    def __init__(self, path: str, field: str, problem: str):
        self.path, self.field, self.problem = path, field, problem
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {problem}")


class ParameterError(UserError):
    """A bad value of a library function's parameter. The message names the parameter (``top_k: ...``); the
    CLI names the flag that set it instead (``--top-k: ...``), see `render`."""

    def __init__(self, param: str, problem: str, source: str | None = None):
        self.param, self.problem, self.source = param, problem, source
        super().__init__(self.render(param))

    def render(self, name: str) -> str:
        """The message with ``name`` (a parameter or a flag) in front of the problem."""
        return f"{self.source}: {name}: {self.problem}" if self.source else f"{name}: {self.problem}"
