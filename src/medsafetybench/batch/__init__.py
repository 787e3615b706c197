"""Batch mode: requests through the providers' batch APIs at half price, resumable from the store.

`runner.BatchChatModel` wraps an `openai:` or `anthropic:` model; `records` holds the provider interface,
`providers` picks a provider (`openai_batches`, `anthropic_batches`); `store` the batch tables; `cli` the
`medsafety batches` command. See docs/models.md ("Batch mode").
"""
