"""Agent integrations: govern the tools an agent already has.

- LangChain: `Guard.wrap_tools(tools)` (governed langchain-core tools) and
  `DiscretionMiddleware(guard)` for `langchain.agents.create_agent` (needs the `langchain` extra;
  those names load on first use).
- OpenAI: `OpenAITools(guard, functions)` answers Chat Completions and Responses tool calls.
- OpenAI Agents SDK: `AgentTools(guard).wrap(tools)` (needs the `openai-agents` extra).
- Pydantic AI: `GovernedToolset(toolset, guard=guard)` (needs the `pydantic-ai` extra).
- Any Python function: `@guard.governed(action="refund")`.
- MCP: `discretion mcp` serves a gateway in front of an MCP server, on stdio or over streamable
  HTTP with an actor per bearer token (`discretion.integrations._mcp`, needs the `mcp` extra).

Every front-end turns a tool call into a proposal, decides it, and runs an allowed call once per
idempotency key (the framework's call id, or the case, the tool and the canonical arguments)
through `guard.executions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from discretion.integrations._call import (
    ActorSource,
    Admission,
    CallSources,
    GovernedResult,
    Governor,
    RationaleSource,
    TextSource,
    ToolCallInfo,
    agent_message,
    call_key,
)
from discretion.integrations._decorator import AsyncGovernedFunction, GovernedFunction
from discretion.integrations._openai import OpenAITools, ToolOutput
from discretion.integrations._setup import check_tool, check_tools

if TYPE_CHECKING:
    from discretion.integrations._langchain import (
        DiscretionMiddleware,
        GovernedTool,
        review_request,
        tool_callables,
    )
    from discretion.integrations._openai_agents import AgentTools
    from discretion.integrations._pydantic_ai import GovernedToolset

__all__ = [
    "ActorSource",
    "Admission",
    "AgentTools",
    "AsyncGovernedFunction",
    "CallSources",
    "DiscretionMiddleware",
    "GovernedFunction",
    "GovernedResult",
    "GovernedTool",
    "GovernedToolset",
    "Governor",
    "OpenAITools",
    "RationaleSource",
    "TextSource",
    "ToolCallInfo",
    "ToolOutput",
    "agent_message",
    "call_key",
    "check_tool",
    "check_tools",
    "review_request",
    "tool_callables",
]

_LANGCHAIN = {"DiscretionMiddleware", "GovernedTool", "review_request", "tool_callables"}


def __getattr__(name: str) -> Any:
    # These names import their framework, which only its extra installs.
    if name == "AgentTools":
        from discretion.integrations import _openai_agents

        _openai_agents.AgentTools.__module__ = __name__
        return _openai_agents.AgentTools
    if name == "GovernedToolset":
        from discretion.integrations import _pydantic_ai

        _pydantic_ai.GovernedToolset.__module__ = __name__
        return _pydantic_ai.GovernedToolset
    if name in _LANGCHAIN:
        from discretion.integrations import _langchain

        found = getattr(_langchain, name)
        if isinstance(found, type):
            found.__module__ = __name__
        return found
    raise AttributeError(f"module 'discretion.integrations' has no attribute {name!r}")


for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type):
        _obj.__module__ = "discretion.integrations"
