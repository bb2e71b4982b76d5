"""Data: raw rows of every supported format -> typed examples, chat templates, encoding, collation into typed batches,
token budgets, the LightningDataModules, and the synthetic annotation world.
Imports: `rlhf.training` (resume state, ranks), `rlhf.models` (the tokenizer loader) and the top level.
"""
