"""`advgame serve`: serve a checkpoint or model over an OpenAI-compatible API.

    ADVGAME_SERVE_TOKEN=$(openssl rand -hex 32) advgame serve RUN/final/defender --port 8000

Binds 127.0.0.1 by default. A bearer token is required: it is read from the environment variable named
by --token-env (default ADVGAME_SERVE_TOKEN); when that is unset or empty the server refuses to start
(exit 1) unless --no-auth is given explicitly. The token is never printed or logged. Binding any other
host prints a warning.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

SUMMARY = "serve a checkpoint or model over an OpenAI-compatible API"
EXIT_ERROR = 1
LOOPBACK_NAMES = {"localhost"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand to the `advgame` parser."""
    p = sub.add_parser("serve", help=SUMMARY, description=SUMMARY[0].upper() + SUMMARY[1:] + ".",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", metavar="CHECKPOINT_OR_MODEL",
                   help="RUN dir (serves final/defender), RUN/final/<player>, an HF dir or peft adapter dir, "
                        "smollm2, tiny:llama ...")
    p.add_argument("--adapter", help="extra LoRA adapter dir applied on top of the model")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-env", default="ADVGAME_SERVE_TOKEN", help="env var holding the bearer token")
    p.add_argument("--no-auth", action="store_true", help="serve without a token (do not expose it)")
    p.add_argument("--max-request-bytes", type=int, default=1_000_000, help="larger bodies get 413")
    p.add_argument("--max-tokens-limit", type=int, default=1024, help="cap on max_tokens per request")
    p.add_argument("--max-n", type=int, default=8, help="cap on n per request")
    p.add_argument("--served-model-name", help="model id reported by the API; None means the model argument")
    p.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    token = None
    if not args.no_auth:
        token = os.environ.get(args.token_env, "").strip()
        if not token:
            print(f"advgame serve: no bearer token: set the environment variable {args.token_env} (e.g. to the "
                  "output of `openssl rand -hex 32`), or pass --no-auth to serve without one", file=sys.stderr)
            return EXIT_ERROR
    if not is_loopback(args.host):
        print(f"advgame serve: WARNING: binding {args.host}, which is not a loopback address: other machines can "
              "reach this model" + ("" if token else " with NO authentication") + ". Restrict access.",
              file=sys.stderr)
    elif token is None:
        print("advgame serve: WARNING: --no-auth: any local user or process can query this model.", file=sys.stderr)
    try:
        from advgame.extras import MissingExtraError, require

        uvicorn = require("uvicorn")
        require("fastapi")
    except MissingExtraError as err:
        print(f"advgame serve: {err}", file=sys.stderr)
        return EXIT_ERROR
    from advgame.backends.hf import HFBackend
    from advgame.models.gguf import ModelNotFoundError
    from advgame.models.inference import load_chat_model
    from advgame.serve.app import create_app

    try:
        model, tokenizer = load_chat_model(args.model, adapter=args.adapter)
    except (ModelNotFoundError, ValueError, OSError) as err:
        print(f"advgame serve: cannot load {args.model}: {err}", file=sys.stderr)
        return EXIT_ERROR
    name = args.served_model_name or args.model
    app = create_app(HFBackend(model, tokenizer, name=name), model_name=name, token=token,
                     max_request_bytes=args.max_request_bytes, max_tokens_limit=args.max_tokens_limit,
                     max_n=args.max_n)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(f"advgame serve: {name} on http://{args.host}:{args.port}/v1 "
          f"({'bearer token from $' + args.token_env if token else 'no auth'})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
