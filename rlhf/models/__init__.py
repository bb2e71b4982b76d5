"""Model code: the Hugging Face backbone builder (the one place that imports transformers/peft/bitsandbytes), reward
heads, the policy, packing, log-probs, sharding plans, and the llama2.c / SmolLM2 GGUF converters.
Imports: the top-level math and types (`rlhf.types`, `rlhf.errors`, `rlhf.files`) only.
"""
