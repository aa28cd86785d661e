"""The pure core: contract types, zones, spatial index, rules and episodes.

Nothing in this package performs I/O or imports Kafka, asyncpg, aiohttp or
Prometheus; ``wardstream replay`` and the stream workers call the same code.
"""
