"""The public face: `__all__` is sorted, complete, and every name says it lives in discretion."""

from __future__ import annotations

import discretion
import discretion.api
import discretion.approvals
import discretion.context
import discretion.evals
import discretion.integrations
import discretion.judge
import discretion.pipeline
import discretion.policy
import discretion.precedent
import discretion.store
import discretion.webhooks


def isort_order(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_all_is_sorted_and_complete():
    public = {name for name in dir(discretion) if not name.startswith("_")}
    modules = {"authority", "budget", "cli", "context", "decision", "errors", "guard", "lineage"}
    modules |= {"money", "policy", "proposal", "store", "types"}
    modules |= {"execution", "integrations"}
    modules |= {"precedent"}
    modules |= {"judge"}
    modules |= {"approvals", "api"}
    modules |= {"evals", "pipeline", "settings", "shadow", "signing", "webhooks"}
    assert discretion.__all__ == sorted(discretion.__all__, key=isort_order)
    assert public - modules == set(discretion.__all__) - {"__version__"}


def test_public_classes_report_the_public_module():
    for name in discretion.__all__:
        member = getattr(discretion, name)
        if isinstance(member, type):
            assert member.__module__ == "discretion", name


def test_extension_packages_export_what_they_list():
    for package in (
        discretion.api,
        discretion.approvals,
        discretion.context,
        discretion.evals,
        discretion.integrations,
        discretion.judge,
        discretion.pipeline,
        discretion.policy,
        discretion.precedent,
        discretion.store,
        discretion.webhooks,
    ):
        assert package.__all__ == sorted(package.__all__, key=isort_order)
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"
