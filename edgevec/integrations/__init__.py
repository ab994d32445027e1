"""Adapters to RAG frameworks, each behind its extra: `edgevec.integrations.langchain`
(`edgevec[langchain]`) and `edgevec.integrations.llama_index` (`edgevec[llama-index]`).
Importing one without its extra raises `edgevec.MissingExtra`, which names the extra."""
