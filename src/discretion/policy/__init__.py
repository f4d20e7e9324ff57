"""Policy packs: YAML validated by pydantic, conditions in CEL compiled once at load."""

from discretion.policy._evaluate import SYSTEM_RULES
from discretion.policy.pack import BUILTIN_VARIABLES, PolicyPack, load_pack

__all__ = ["BUILTIN_VARIABLES", "SYSTEM_RULES", "PolicyPack", "load_pack"]
