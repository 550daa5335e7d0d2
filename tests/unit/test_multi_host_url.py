"""A database URL that names a primary and its standbys (issue 24, asyncpg's multi-host syntax with
`target_session_attrs=read-write`) is checked host by host like a single one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.runtime.settings import Settings, database_hosts_and_sslmode

FOLLOWING = "target_session_attrs=read-write"


class TestMultiHostUrl:
    def test_every_host_is_read(self):
        """Each host of `db1:5432,db2:5433`, and the sslmode, are what the TLS check looks at."""
        url = f"postgresql://u@db1.internal:5432,db2.internal:5433/orderstatus?{FOLLOWING}&sslmode=verify-full"
        assert database_hosts_and_sslmode(url) == (["db1.internal", "db2.internal"], "verify-full")

    def test_a_remote_standby_without_tls_is_refused_by_name(self):
        """A loopback primary does not excuse a remote standby: refused, naming the standby."""
        with pytest.raises(ValidationError) as refused:
            Settings(database_url=f"postgresql://u@127.0.0.1:5432,db2.internal:5432/orderstatus?{FOLLOWING}")
        assert "db2.internal" in refused.value.errors()[0]["msg"]

    @pytest.mark.parametrize("url", [
        f"postgresql://u@db1.internal:5432,db2.internal:5432/orderstatus?{FOLLOWING}&sslmode=verify-full",
        f"postgresql://u@127.0.0.1:5432,127.0.0.1:5433/orderstatus?{FOLLOWING}",
    ])
    def test_tls_or_loopback_hosts_start(self, url):
        """TLS for all the hosts, or every host on loopback: accepted as given."""
        assert Settings(database_url=url).database_url.get_secret_value() == url
