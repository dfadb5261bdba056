"""Shards owned by other processes: the channel between shard processes and handles on them."""
