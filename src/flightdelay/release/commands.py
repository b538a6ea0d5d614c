"""The human commands outside the pipeline: `verify` a package, `promote`, `rollback` and `history` of a
release channel (staging, prod; GTO calls them stages).

`flightdelay.cli` parses the arguments and imports this module only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flightdelay.release import registry
from flightdelay.release.package_format import load_package


def run(args: argparse.Namespace) -> None:
    """Run one of the commands; its result goes to stdout."""
    if args.stage == "verify":
        package = load_package(args.path)
        m = package.manifest
        sys.stdout.write(
            f"{package.path}: OK ({m['model'].get('kind')} {m['model'].get('task')}, gate {m['gate']['decision']}, "
            f"hash {package.hash})\n"
        )
    elif args.stage == "promote":
        record = registry.promote(args.repo, args.channel, version=args.version, reason=args.reason)
        p = record["promoted"]
        sys.stdout.write(f"{args.channel}: {p['version']} ({p['package']['name']}), tag {p['tag']}\n")
    elif args.stage == "rollback":
        record = registry.rollback(args.repo, args.channel, reason=args.reason)
        p = record["promoted"]
        sys.stdout.write(f"{args.channel}: rolled back to {p['version']} ({p['package']['name']}), tag {p['tag']}\n")
    elif args.stage == "history":
        rows = registry.history(args.repo, args.channel)
        sys.stdout.write(
            json.dumps(rows, indent=2) + "\n"
            if args.json
            else registry.render_history(registry.artifact_name(Path(args.repo)), args.channel, rows)
        )
