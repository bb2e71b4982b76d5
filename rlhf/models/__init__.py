"""Model code: reward heads, the Hugging Face backbone loader and the llama2.c checkpoint converter."""
