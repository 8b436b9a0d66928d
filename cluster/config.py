"""Settings of the coordination between replicas (`MOBILIA_CLUSTER__*`); Redis itself is `MOBILIA_REDIS_URL`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ClusterSettings(BaseModel):
    """Leases, change notices and Redis timeouts used when several replicas share one database."""

    lease_ttl_s: float = Field(
        10.0, ge=1, le=300, description="Lifetime of a lease (social monitor, runs) unless its holder renews it."
    )
    lease_renew_s: float = Field(3.0, gt=0, description="Seconds between two renewals by the holder.")
    lease_retry_s: float = Field(2.0, gt=0, description="Seconds between two tries of a replica waiting for a lease.")
    change_poll_s: float = Field(
        2.0, gt=0, le=5, description="Seconds between two reads of the change versions in the database (the "
        "fallback of Redis' instant notices): every replica applies a change within this delay."
    )
    redis_timeout_s: float = Field(1.0, gt=0, description="Connect and read timeout of one Redis call.")
    health_cache_s: float = Field(1.0, ge=0, description="Seconds a Redis health answer is reused.")
