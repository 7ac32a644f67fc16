"""The course's Redis provisioning: a real server, started privately, and clear errors without one."""

from __future__ import annotations

import pytest

from course_utils.redis_server import RedisServer, RedisUnavailable, connect


def test_fixture_is_a_real_redis_server_that_runs_lua(redis_client):
    assert redis_client.info("server")["redis_version"]
    # Lesson 07's limiter is a Lua script that reads the server's clock: both must work.
    seconds, micros = redis_client.eval("return redis.call('TIME')", 0)
    assert int(seconds) > 1_600_000_000 and 0 <= int(micros) < 1_000_000


def test_private_server_starts_and_stops():
    with RedisServer() as srv:
        client = connect(srv.url)
        client.set("k", "v")
        assert client.get("k") == "v"
        url = srv.url
        client.close()
    with pytest.raises(RedisUnavailable, match="no Redis server answers"):
        connect(url, socket_connect_timeout=0.2)


def test_missing_binary_names_the_fix():
    srv = RedisServer(binary=None)
    srv.binary = None
    with pytest.raises(RedisUnavailable, match="apt-get install -y redis-server"):
        srv.start()
