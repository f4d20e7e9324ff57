"""`@guard.governed(...)`: govern a plain Python function, sync or async."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, cast, overload

from pydantic_core import to_jsonable_python

from discretion.decision import Decision, Outcome
from discretion.errors import CallDenied, CallRouted, ProposalError
from discretion.integrations._call import (
    KEY_ARGUMENT,
    ActorSource,
    GovernedResult,
    Governor,
    RationaleSource,
    TextSource,
    ToolCallInfo,
    agent_message,
)
from discretion.integrations._setup import parameters_of

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["AsyncGovernedFunction", "GovernedFunction", "governed"]

P = ParamSpec("P")
R = TypeVar("R")


class _Bound:
    """One call's arguments: as the function takes them, and as JSON for the proposal.

    Arguments a `**kwargs` parameter gathers are decided by their own names, as the function
    receives them, and a decided value is written back there; values a `*args` parameter
    gathers have no name a pack could read, so a call passing any is refused.

    A value with no JSON form is recorded, and keys the call, by its own text when its type
    gives one (`__str__`, `__repr__`), else by its type alone (`<object payments.Client>`): a
    retry passing a new client is the same call, one passing another SKU is not. A decided value
    that differs from the one passed (an amount written out, a lower one approved) is handed to
    the function in the type it passed (`Decimal("41.00")`, not a string).
    """

    def __init__(self, tool: str, signature: inspect.Signature, args: Any, kwargs: Any) -> None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        self.bound = bound
        kinds = {p.name: p.kind for p in signature.parameters.values()}
        self.var_keyword = next(
            (name for name, kind in kinds.items() if kind is inspect.Parameter.VAR_KEYWORD), None
        )
        for name, kind in kinds.items():
            if kind is inspect.Parameter.VAR_POSITIONAL and bound.arguments.get(name):
                raise ProposalError(
                    f"{tool}(): the values its *{name} takes have no name the policy could"
                    " read, so the call cannot be decided; pass them by name",
                    field=f"tool.arguments.{name}",
                )
        given = bound.arguments.get(KEY_ARGUMENT)
        self.key: str | None = str(given) if given is not None else None
        named = {
            k: v
            for k, v in bound.arguments.items()
            if k != KEY_ARGUMENT and kinds.get(k) is not inspect.Parameter.VAR_POSITIONAL
        }
        gathered = named.pop(self.var_keyword, {}) if self.var_keyword is not None else {}
        self.arguments: dict[str, Any] = to_jsonable_python(
            {**named, **{k: v for k, v in gathered.items() if k != KEY_ARGUMENT}},
            fallback=_opaque,
        )

    def call_with(
        self, key: str, takes_key: bool, approved: Mapping[str, Any] | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's args and kwargs, with the key and any values an approval changed."""
        if takes_key:
            self.bound.arguments[KEY_ARGUMENT] = key
        gathered = (
            self.bound.arguments.get(self.var_keyword) if self.var_keyword is not None else None
        )
        for name, value in (approved or {}).items():
            # An approval may fix an argument (an edited amount): it arrives as JSON.
            if self.arguments.get(name) == value:
                continue
            if name in self.bound.arguments and name != self.var_keyword:
                self.bound.arguments[name] = _as_passed(name, self.bound.arguments[name], value)
            elif isinstance(gathered, dict) and name in gathered:
                gathered[name] = _as_passed(name, gathered[name], value)
        return self.bound.args, self.bound.kwargs


def _opaque(value: Any) -> str:
    """A value with no JSON form as text: its own `__str__`, or its type when it has none.

    The default text (`<Client object at 0x7f...>`) names the instance, not the value: a retry
    passing a new client would be another call.
    """
    kind = type(value)
    # Its own text: a class of its line (not `object`) defines `__str__` or `__repr__`.
    if any("__str__" in k.__dict__ or "__repr__" in k.__dict__ for k in kind.__mro__[:-1]):
        return str(value)
    return f"<object {kind.__module__}.{kind.__qualname__}>"


def _as_passed(name: str, passed: Any, value: Any) -> Any:
    """A decided value (JSON) in the type of the one the caller passed, when that is a number.

    Raises:
        ProposalError: the decided value cannot be that type exactly.
    """
    if isinstance(value, bool) or isinstance(passed, bool):
        return value
    try:
        if isinstance(passed, Decimal):
            return Decimal(str(value))
        if isinstance(passed, int):
            exact = Decimal(str(value))
            if exact != exact.to_integral_value():
                raise ValueError(value)
            return int(exact)
        if isinstance(passed, float):
            return float(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        raise ProposalError(
            f"argument {name!r} was passed as {type(passed).__name__} and decided as {value!r},"
            " which it cannot hold exactly; pass it as a string or a Decimal",
            field=f"tool.arguments.{name}",
        ) from None
    return value


def _refuse(decision: Decision) -> CallDenied | CallRouted:
    if decision.outcome is Outcome.DENY:
        return CallDenied(agent_message(decision), decision=decision)
    return CallRouted(agent_message(decision), decision=decision)


class _Governed(Generic[P, R]):
    def __init__(self, governor: Governor, function: Callable[P, Any], tool: str) -> None:
        self._governor = governor
        self._function = function
        self._tool = tool
        self._signature = inspect.signature(function)
        self._takes_key = KEY_ARGUMENT in self._signature.parameters
        # Checked now, not at the first call: an unmapped function never runs ungoverned.
        self._is_governed = governor.check(tool, parameters_of(function))
        self._key: str | None = None
        functools.update_wrapper(cast("Any", self), function)

    def keyed(self, key: str) -> Self:
        """The same function, whose calls carry `key` as their idempotency key.

        Without a key, a call is keyed by its case, the function and its arguments, so an
        identical call on the same case is a retry: it replays the first result. A second,
        legitimate identical call (another refund of the same amount on the same case) is
        marked new by a key of its own: `refund.keyed("K-1:refund-2")(...)` is decided anew
        and runs once; called again with the same key, it is a retry and replays.

        Raises:
            ProposalError: the key is empty or not text.
        """
        if not isinstance(key, str) or not key.strip():
            raise ProposalError(
                f"{self._tool}.keyed(): the key must be non-empty text, such as"
                f' "K-1:refund-2"; got {key!r}',
                field="idempotency_key",
            )
        marked = copy.copy(self)
        marked._key = key
        return marked

    def _prepare(self, args: Any, kwargs: Any) -> tuple[_Bound, ToolCallInfo]:
        bound = _Bound(self._tool, self._signature, args, kwargs)
        key = bound.key if bound.key is not None else self._key
        return bound, ToolCallInfo(tool=self._tool, arguments=bound.arguments, call_id=key)

    def _runnable(self, bound: _Bound, arguments: dict[str, Any], key: str) -> Any:
        """What the function returns (a coroutine, for an async one), called as approved."""
        call_args, call_kwargs = bound.call_with(key, self._takes_key, arguments)
        return self._function(*call_args, **call_kwargs)


class GovernedFunction(_Governed[P, R]):
    """A sync function whose calls are decided before they run, and run once per key.

    Calling it returns what the function returns, or raises `CallDenied` or `CallRouted`
    (whose `.decision` says why). `call` returns a `GovernedResult` with the decision.
    """

    def call(self, *args: P.args, **kwargs: P.kwargs) -> GovernedResult:
        """Decide and, when allowed, run; return the decision with the result.

        Raises:
            CallDenied: the decision is deny; the function did not run.
            CallRouted: the decision is route and no approval has queued it yet.
            ExecutionError: the same call is running and has not finished.
        """
        if not self._is_governed:
            return GovernedResult(decision=None, value=self._function(*args, **kwargs))
        bound, info = self._prepare(args, kwargs)
        decision, queued, governed = self._governor.admit(info)
        if not decision.is_allowed and queued is None:
            raise _refuse(decision)
        return self._governor.run(
            decision,
            info,
            lambda arguments, key: self._runnable(bound, arguments, key),
            execution=queued,
            arguments=governed,
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.call(*args, **kwargs).value
        return result


class AsyncGovernedFunction(_Governed[P, R]):
    """`GovernedFunction` for `async def` functions: calling it and `call` are awaitable."""

    async def call(self, *args: P.args, **kwargs: P.kwargs) -> GovernedResult:
        """Decide and, when allowed, run; return the decision with the result.

        Raises:
            CallDenied: the decision is deny; the function did not run.
            CallRouted: the decision is route and no approval has queued it yet.
            ExecutionError: the same call is running and has not finished.
        """
        if not self._is_governed:
            return GovernedResult(decision=None, value=await self._function(*args, **kwargs))
        bound, info = self._prepare(args, kwargs)
        decision, queued, governed = await self._governor.aadmit(info)
        if not decision.is_allowed and queued is None:
            raise _refuse(decision)
        return await self._governor.arun(
            decision,
            info,
            lambda arguments, key: self._runnable(bound, arguments, key),
            execution=queued,
            arguments=governed,
        )

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = (await self.call(*args, **kwargs)).value
        return result


class _Decorator:
    def __init__(self, governor: Governor, tool: str | None) -> None:
        self._governor = governor
        self._tool = tool

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, function: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncGovernedFunction[P, R]: ...

    @overload
    def __call__(self, function: Callable[P, R]) -> GovernedFunction[P, R]: ...

    def __call__(
        self, function: Callable[P, Any]
    ) -> GovernedFunction[P, Any] | AsyncGovernedFunction[P, Any]:
        tool = self._tool or function.__name__
        if inspect.iscoroutinefunction(function):
            return AsyncGovernedFunction(self._governor, function, tool)
        return GovernedFunction(self._governor, function, tool)


def governed(
    guard: Guard,
    *,
    action: str | None = None,
    tool: str | None = None,
    actor: ActorSource = None,
    case_id: TextSource = None,
    customer_id: TextSource = None,
    rationale: RationaleSource = None,
    fields: Mapping[str, str] | None = None,
) -> _Decorator:
    """Govern a plain function: see `Guard.governed`."""
    governor = Governor(
        guard,
        action=action,
        actor=actor,
        case_id=case_id,
        customer_id=customer_id,
        rationale=rationale,
        fields=fields,
    )
    return _Decorator(governor, tool)
