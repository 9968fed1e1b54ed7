"""LLM services: the client that balances across replicas, serving, engines.

Knows nothing of the runtime: agents talk to it through :class:`ChatClient`.
"""
