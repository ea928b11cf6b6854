"""The ``homesearch`` command: one entry point, one subcommand per job.

Each subcommand lives beside the code it drives and exposes ``main(argv)``;
this module only dispatches, importing lazily so ``homesearch --help`` stays
fast and a broken optional part cannot break the others.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help). Modules expose `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("homesearch.stack", "run the whole stack on this machine (Triton, Valkey, ranking, gateway)"),
    "search": ("homesearch.cli.search", "search a running gateway from the terminal"),
    "index": ("services.ranking.ingest.cli", "index a catalog JSONL file into a running ranking service"),
    "delete": ("services.ranking.ingest.cli_delete", "delete products by id from a running ranking service"),
    "ranking": ("services.ranking.server", "run the ranking (fusion) service alone"),
    "gateway": ("gateway.server", "run the gateway alone"),
    "console": ("console.cli", "run the web console alone (search page, relevance inspection)"),
    "triton": ("services.encoders.serving.launcher", "run tritonserver with the encoder models"),
    "prepare-models": ("services.encoders.operations.prepare", "convert and cache model weights (idempotent)"),
    "train": ("services.encoders.training.cli", "train the image head against the frozen text tower"),
    "eval": ("homesearch.evaluation.cli", "measure relevance (Recall, MRR, nDCG) through the Search API"),
    "eval-journeys": ("homesearch.evaluation.journeys", "measure shop the look, composed, similar and unlisted products through the API"),
    "bench": ("bench.cli", "benchmark latency, throughput, ingestion and index scale"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: homesearch COMMAND [options]",
        "",
        "Cross-modal product search for home-furnishing stores.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'homesearch COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from homesearch import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"homesearch: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
