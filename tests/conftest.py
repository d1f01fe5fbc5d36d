"""Shared pytest set-up. Fixtures live in tests/fixtures/ and are loaded here as plugins.

- tests/fixtures/kafka.py: the session-scoped real Kafka broker (``kafka_broker``) and per-test
  unique topic prefixes (``kafka_settings``).
- tests/fixtures/warehouse.py: a fresh chDB store per test (``warehouse``).
"""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.warehouse"]
