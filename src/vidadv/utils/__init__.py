"""vidadv.utils: general helpers with no vidadv dependencies.

- `io`: crash-safe (atomic) writes of bytes, text, JSON and safetensors files.
- `stats`: bootstrap intervals, the paired bootstrap and the exact McNemar test.
- `distributed`: the torchrun environment (rank, world size, device) and sharding helpers.
"""
