"""The peer-to-peer runtime: workers, transport, registry, journal."""
