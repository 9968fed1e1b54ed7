"""Engines that serve the OpenAI chat-completions API: simulated, llama.cpp, vLLM, external."""
