"""An OpenAI-compatible chat-completions server for checkpoints and HF models (`advgame serve`)."""
