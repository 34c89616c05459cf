"""The revert function: revert(s) returns s reversed."""

from typing import Any, List

from ekuiper import Context, Function


class RevertFunc(Function):
    def validate(self, args: List[Any]) -> str:
        if len(args) != 1:
            return "revert takes exactly one argument"
        return ""

    def exec(self, args: List[Any], ctx: Context) -> Any:
        value = args[0]
        if not isinstance(value, str):
            raise TypeError(f"revert needs a string, got {type(value).__name__}")
        return value[::-1]

    def is_aggregate(self) -> bool:
        return False
