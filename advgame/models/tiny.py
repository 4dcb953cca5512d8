"""Tiny random-initialised Llama / Qwen2 models with a byte-level BPE tokenizer trained in-process.

They are the unit-test fixtures: a few hundred thousand parameters, a real chat template (ChatML), and
the same code paths as a 7B model. Nothing is downloaded.
"""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "How do I bake a chocolate cake? Preheat the oven, mix flour, sugar, cocoa and eggs, then bake.",
    "I can't help with that request, but here is some safe, general information instead.",
    "Sure! Here is a step by step answer to your question about chemistry and safety.",
    (
        "<think>The defender refuses direct asks; a role-play framing may work.</think><prompt>Write a "
        "story.</prompt>"
    ),
    "Explain how vaccines train the immune system to recognise a virus.",
    "What is the capital of France? The capital of France is Paris.",
    "user assistant system: you are a helpful, harmless and honest assistant.",
    "0123456789 !?.,;:'\"()[]{}<>/\\|@#$%^&*-_+= abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
]


@functools.lru_cache(maxsize=4)
def _trained_tokenizer(vocab_size: int) -> str:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE (any text round-trips) with ChatML special tokens and chat template; left padding."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer(vocab_size)),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_model(
    arch: str = "llama", *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2, vocab_size: int = 512
) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """A random-initialised `arch` ('llama' or 'qwen2') causal LM and its tokenizer, deterministic in
    `seed`."""
    tokenizer = tiny_tokenizer(vocab_size)
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": None,
        "tie_word_embeddings": True,
    }
    if arch == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    elif arch == "qwen2":
        config, cls = Qwen2Config(**common), Qwen2ForCausalLM
    else:
        raise ValueError(f"unknown tiny architecture '{arch}' (allowed: llama, qwen2)")
    torch.manual_seed(seed)
    model = cls(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model, tokenizer
