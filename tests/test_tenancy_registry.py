"""The tenant registry's keys: issued once, stored as digests, revoked and rotated at once (issue 29)."""

from __future__ import annotations

import threading

import pytest

from course_utils.tenancy import TenantRegistry, Unauthenticated


def test_a_revoked_key_fails_at_once_and_the_tenants_other_keys_still_work():
    reg = TenantRegistry()
    leaked = reg.register("acme", "pro")
    other = reg.issue_key("acme")
    assert reg.authenticate(leaked).tenant_id == "acme"
    assert reg.revoke_key(leaked) is True
    with pytest.raises(Unauthenticated):
        reg.authenticate(leaked)
    assert reg.authenticate(other).tenant_id == "acme"
    assert reg.revoke_key(leaked) is False  # already gone
    assert reg.revoke_key("tk_never-issued") is False and reg.revoke_key(None) is False  # type: ignore[arg-type]


def test_rotation_swaps_the_key_in_one_step():
    reg = TenantRegistry()
    old = reg.register("acme", "pro")
    new = reg.rotate_key(old)
    assert new != old and new.startswith(TenantRegistry.KEY_PREFIX)
    assert reg.authenticate(new).tenant_id == "acme"
    with pytest.raises(Unauthenticated):
        reg.authenticate(old)
    with pytest.raises(Unauthenticated):
        reg.rotate_key(old)  # a revoked key cannot mint a new one


def test_revoking_a_tenants_keys_and_removing_it():
    reg = TenantRegistry()
    keys = [reg.register("acme", "pro"), reg.issue_key("acme")]
    globex = reg.register("globex", "free")
    assert reg.revoke_tenant_keys("acme") == 2
    for key in keys:
        with pytest.raises(Unauthenticated):
            reg.authenticate(key)
    assert "acme" in reg and reg.authenticate(reg.issue_key("acme")).tenant_id == "acme"
    assert reg.remove("acme") == 1 and "acme" not in reg
    with pytest.raises(KeyError):
        reg.context("acme")
    with pytest.raises(KeyError):
        reg.remove("acme")
    assert reg.authenticate(globex).tenant_id == "globex"
    assert reg.authenticate(reg.register("acme", "pro")).tenant_id == "acme"  # the id may come back, new keys


def test_rotation_under_concurrency_leaves_exactly_one_valid_key():
    """Eight threads rotate the same key at once: one wins, the others get Unauthenticated."""
    reg = TenantRegistry()
    old = reg.register("acme", "pro")
    results: list[str] = []
    refused: list[Exception] = []
    start = threading.Barrier(8)

    def rotate() -> None:
        start.wait()
        try:
            results.append(reg.rotate_key(old))
        except Unauthenticated as exc:
            refused.append(exc)

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(refused) == 7
    assert reg.authenticate(results[0]).tenant_id == "acme"
