"""A voice-chat web server over the speech pipeline (`vita_jax.pipeline.VoiceChat`): FastAPI +
uvicorn, a websocket that streams text deltas and audio chunks as they exist, HTTP endpoints for
ASR / TTS / one-shot chat, and a static page (vita_jax/serve/static). See docs/serving.md.

    python -m vita_jax.serve --demo                   # tiny random parts, no download
    python -m vita_jax.serve --checkpoint LLM --tokenizer-dir TOK --decoder-dir DEC [--host ... --port ...]
"""
