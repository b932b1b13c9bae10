"""lanic-hub benchmarks: ``python -m benchmarks`` runs every ``bench_*.py`` and prints its table."""

#: The suite's modules (benchmarks/bench_<name>.py), in order: the quickstart run feeds patterns,
#: eval and demo.
ORDER = [
    "quickstart",
    "phantom",
    "backbone",
    "ensemble",
    "peers",
    "patterns",
    "merge",
    "scoring",
    "explain",
    "eval",
    "demo",
]
