"""`advgame serve`: serve a checkpoint or model over an OpenAI-compatible API.

    ADVGAME_SERVE_TOKEN=$(openssl rand -hex 32) advgame serve RUN/final/defender --port 8000

Binds 127.0.0.1 by default. A bearer token is required: it is read from the environment variable named
by --token-env (default ADVGAME_SERVE_TOKEN); when that is unset or empty the server refuses to start
(exit 1) unless --no-auth is given explicitly. The token is never printed or logged (query strings are
cut from the access log). Binding any other host prints a warning. The server's limits (body size, prompt
tokens, max_tokens, n, concurrency, connections, timeouts) are options below; docs/serve.md explains them.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from advgame.cli_args import PORT, POSITIVE, POSITIVE_FLOAT

SUMMARY = "serve a checkpoint or model over an OpenAI-compatible API"
EPILOG = """limits (each refused with a one-line JSON error, never a traceback):
  body        over --max-request-bytes -> 413; not received within --body-timeout -> 408
  prompt      over --max-prompt-tokens tokens (at most the model's context - 1) -> 400
  max_tokens  clamped to --max-tokens-limit; prompt + max_tokens over the model's context -> 400
  n           over --max-n -> 422; bad JSON / schema / seed outside [0, 2**63) / invalid Unicode -> 422
  concurrency over --max-concurrent completions running or queued -> 503 (Retry-After: 1); one generation
              runs at a time, and a small request (prompt + n x max_tokens <= --small-request-tokens tokens)
              preempts a large one between decoder layers
  connections over --max-connections open connections -> 503; request headers not complete within
              --header-timeout s, or idle keep-alive past --keep-alive-timeout s -> connection closed
  shutdown    SIGTERM/SIGINT stops the generation in progress; requests still open after
              --shutdown-timeout s are cancelled
See docs/serve.md."""
EXIT_ERROR = 1


LOOPBACK_NAMES = {"localhost"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand to the `advgame` parser."""
    p = sub.add_parser(
        "serve",
        help=SUMMARY,
        description=SUMMARY[0].upper() + SUMMARY[1:] + ".",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument(
        "model",
        metavar="CHECKPOINT_OR_MODEL",
        help="RUN dir (serves final/defender), RUN/final/<player>, an HF dir or peft adapter dir, "
        "smollm2, tiny:llama ...",
    )
    p.add_argument("--adapter", help="extra LoRA adapter dir applied on top of the model")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback by default)")
    p.add_argument("--port", type=PORT, default=8000, help="TCP port (0..65535)")
    p.add_argument("--token-env", default="ADVGAME_SERVE_TOKEN", help="env var holding the bearer token")
    p.add_argument("--no-auth", action="store_true", help="serve without a token (do not expose it)")
    lim = p.add_argument_group("limits (see below and docs/serve.md)")
    lim.add_argument("--max-request-bytes", type=POSITIVE, default=1_000_000, help="larger bodies get 413")
    lim.add_argument(
        "--max-prompt-tokens",
        type=POSITIVE,
        default=4096,
        help="longer prompts get 400 (also capped at the model's context - 1)",
    )
    lim.add_argument("--max-tokens-limit", type=POSITIVE, default=1024, help="cap on max_tokens per request")
    lim.add_argument("--max-n", type=POSITIVE, default=8, help="cap on n per request")
    lim.add_argument(
        "--max-concurrent", type=POSITIVE, default=32, help="completions running or queued; more get 503"
    )
    lim.add_argument(
        "--small-request-tokens",
        type=POSITIVE,
        default=256,
        help="prompt + n x max_tokens at or under this preempts larger generations",
    )
    lim.add_argument("--max-connections", type=POSITIVE, default=64, help="open connections; more get 503")
    lim.add_argument(
        "--header-timeout",
        type=POSITIVE_FLOAT,
        default=10.0,
        help="seconds for a client to send its request headers",
    )
    lim.add_argument(
        "--body-timeout", type=POSITIVE_FLOAT, default=30.0, help="seconds to receive a request body"
    )
    lim.add_argument("--keep-alive-timeout", type=POSITIVE, default=5, help="idle keep-alive seconds")
    lim.add_argument(
        "--shutdown-timeout", type=POSITIVE, default=5, help="seconds a shutdown waits for open requests"
    )
    p.add_argument("--served-model-name", help="model id reported by the API; None means the model argument")
    p.set_defaults(run=run)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


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
            print(
                f"advgame serve: no bearer token: set the environment variable {args.token_env} (e.g. to the "
                "output of `openssl rand -hex 32`), or pass --no-auth to serve without one",
                file=sys.stderr,
            )
            return EXIT_ERROR
    if not is_loopback(args.host):
        print(
            f"advgame serve: WARNING: binding {args.host}, which is not a loopback address: other machines "
            "can reach this model" + ("" if token else " with NO authentication") + ". Restrict access.",
            file=sys.stderr,
        )
    elif token is None:
        print(
            "advgame serve: WARNING: --no-auth: any local user or process can query this model.",
            file=sys.stderr,
        )
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
    app = create_app(
        HFBackend(model, tokenizer, name=name),
        model_name=name,
        token=token,
        max_request_bytes=args.max_request_bytes,
        max_tokens_limit=args.max_tokens_limit,
        max_n=args.max_n,
        max_prompt_tokens=args.max_prompt_tokens,
        max_concurrent=args.max_concurrent,
        small_request_tokens=args.small_request_tokens,
        body_timeout_s=args.body_timeout,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = build_server(uvicorn, app, args)
    print(
        f"advgame serve: {name} on http://{args.host}:{args.port}/v1 "
        f"({'bearer token from $' + args.token_env if token else 'no auth'}; prompts up to "
        f"{app.state.limits.max_prompt_tokens} tokens)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    except (OSError, OverflowError) as err:
        print(f"advgame serve: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as err:  # uvicorn exits 1 when it cannot bind, after logging why
        if err.code not in (0, None):
            print(
                f"advgame serve: cannot listen on {args.host}:{args.port} (see the error above)",
                file=sys.stderr,
            )
            return EXIT_ERROR
    return 0


def build_server(uvicorn, app, args: argparse.Namespace):
    """A uvicorn server with the limits of `args`: connection cap, header/keep-alive/shutdown timeouts, query
    strings cut from the access log, and the generation in progress stopped on shutdown."""
    from advgame.serve.app import RedactQueryFilter
    from advgame.serve.protocol import guarded_h11_protocol

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        http=guarded_h11_protocol(args.header_timeout),
        limit_concurrency=args.max_connections,
        timeout_keep_alive=args.keep_alive_timeout,
        timeout_graceful_shutdown=args.shutdown_timeout,
        h11_max_incomplete_event_size=16 * 1024,
        lifespan="off",
    )
    logging.getLogger("uvicorn.access").addFilter(RedactQueryFilter())
    scheduler = app.state.scheduler

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            scheduler.stop()  # the generation in progress ends at its next layer
            super().handle_exit(sig, frame)

    return Server(config)
