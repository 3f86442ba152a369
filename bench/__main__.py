"""`make bench`: every benchmark, then one table, JSON and chart in bench/results/."""

import logging
import sys

from bench import e2e, report, scale


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    e2e.main(["penguins", "taxi"])
    scale.main([15_000, 150_000, 1_500_000])
    for module in ("bench.trainer", "bench.images"):
        try:
            __import__(module, fromlist=["main"]).main()
        except ImportError as err:
            print(f"skipped {module}: {err}", file=sys.stderr)
    report.main()


if __name__ == "__main__":
    main()
