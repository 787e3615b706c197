"""Batch mode: requests through the providers' batch APIs at half price, resumable from the store.

`runner.BatchChatModel` wraps an `openai:` or `anthropic:` model; `providers` holds the provider interface
(`openai_batches`, `anthropic_batches`); `store` the batch tables; `cli` the `medsafety batches` command.
See docs/models.md ("Batch mode").
"""
