"""Multi-host fine-tuning with JAX: joining the job and sharding data."""

from kerasft._src.distributed.cluster import initialize
from kerasft._src.distributed.shard import shard

__all__ = [
    "initialize",
    "shard",
]
