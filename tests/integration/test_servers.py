"""The test harness itself: throwaway Redis restarts on its port, per-run databases are dropped."""

import time

import pytest
import redis

from servers import PostgresServer, RedisServer, ServerError, create_database, drop_database, pg_execute


def test_redis_restarts_on_the_same_port():
    with RedisServer() as server:
        port, url = server.port, server.url
        client = redis.Redis.from_url(url, socket_timeout=1)
        assert client.ping()
        server.stop()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_timeout=1, retry=None).ping()
        server.start()
        assert (server.port, server.url) == (port, url)
        assert redis.Redis.from_url(url, socket_timeout=1).ping()


def test_redis_pause_hangs_clients_but_keeps_data():
    with RedisServer() as server:
        redis.Redis.from_url(server.url).set("k", "v")
        server.pause(0.5)
        with pytest.raises(redis.TimeoutError):
            redis.Redis.from_url(server.url, socket_timeout=0.1, retry=None).get("k")
        time.sleep(0.5)
        assert redis.Redis.from_url(server.url, socket_timeout=1).get("k") == b"v"


def test_redis_close_leaves_no_process():
    server = RedisServer()
    proc = server._proc
    server.close()
    assert proc.poll() is not None
    with pytest.raises(ServerError):
        server.start()


def test_a_created_database_accepts_connections_and_is_dropped():
    with PostgresServer() as pg:
        dsn = create_database(pg.admin_dsn)
        name = dsn.rsplit("/", 1)[1]
        assert name.startswith("viewer_test_")
        assert pg_execute(dsn, "SELECT current_database() AS db")[0]["db"] == name
        drop_database(pg.admin_dsn, dsn)
        rows = pg_execute(pg.admin_dsn, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        assert rows == []
