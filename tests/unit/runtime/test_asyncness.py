"""Finding a symbol's async methods from their code flags."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ekuiper._runtime.asyncness import (
    ASYNC_GENERATOR,
    COROUTINE,
    SINK_METHODS,
    async_kind,
    async_methods,
)
from tests.conftest import loaded_after


async def _coro(x: int) -> int:
    return x


async def _agen() -> AsyncIterator[int]:
    yield 1


def _plain() -> None:
    return None


def _gen() -> Any:
    yield 1


class _Mixed:
    async def open(self, ctx: Any) -> None:
        return None

    def close(self, ctx: Any) -> None:
        return None

    async def collect(self, ctx: Any, data: Any) -> None:
        return None

    @staticmethod
    async def configure(conf: Any) -> None:
        return None


@pytest.mark.parametrize(("fn", "kind"), [
    (_coro, COROUTINE), (_agen, ASYNC_GENERATOR), (_plain, None), (_gen, None),
    (len, None), (object(), None), (None, None), (lambda: None, None),
])
def test_async_kind_of_functions(fn: Any, kind: str | None) -> None:
    """async def is a coroutine, async def with yield an async generator, the rest sync."""
    assert async_kind(fn) == kind


def test_async_kind_agrees_with_inspect() -> None:
    """The code-flag reading gives what inspect's predicates give."""
    for fn in (_coro, _agen, _plain, _gen):
        kind = async_kind(fn)
        assert (kind == COROUTINE) is inspect.iscoroutinefunction(fn)
        assert (kind == ASYNC_GENERATOR) is inspect.isasyncgenfunction(fn)


def test_async_kind_sees_through_bound_methods_and_partials() -> None:
    """A bound method or a functools.partial of an async def is async."""
    assert async_kind(_Mixed().open) == COROUTINE
    assert async_kind(functools.partial(_coro, 1)) == COROUTINE
    assert async_kind(functools.partial(functools.partial(_agen))) == ASYNC_GENERATOR


def test_async_methods_lists_only_the_async_ones() -> None:
    """async_methods names each async method of a symbol and no sync one."""
    assert async_methods(_Mixed(), SINK_METHODS) == {
        "configure": COROUTINE, "open": COROUTINE, "collect": COROUTINE}


def test_reading_flags_imports_neither_asyncio_nor_inspect() -> None:
    """Finding no async method loads neither asyncio nor inspect."""
    code = ("from ekuiper._runtime.asyncness import async_methods\n"
            "class S:\n def open(self, ctx): pass\n"
            "assert async_methods(S(), ('open', 'close')) == {}")
    assert loaded_after(code, ("asyncio", "inspect")) == []
