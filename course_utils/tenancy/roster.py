"""The lesson's 40 tenants (``data/lesson07_tenants.csv``, made by ``data/make_lesson07_tenants.py``)."""

from __future__ import annotations

from typing import Any

from ..models import DATA_DIR

__all__ = ["TENANTS_CSV", "load_tenants"]

TENANTS_CSV = DATA_DIR / "lesson07_tenants.csv"


def load_tenants() -> Any:
    """The tenants as a DataFrame: tenant_id, plan, requests, cached_share, batch_requests (see data/README_lesson07.md)."""
    import pandas as pd

    return pd.read_csv(TENANTS_CSV)
