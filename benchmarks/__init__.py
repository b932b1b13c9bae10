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
    "cli",
]

#: Modules that run only when named (``python -m benchmarks scale``): the paper-shape rehearsal
#: takes about 40 minutes on 2 cores; the Space at paper shape needs a model folder built first;
#: the phantom-shortcut suite's times are read from a run of it (or, asked for, one seed run cold);
#: the paper-shape run trains T = 100 at L = 2048 to its plateau (hours; it resumes where it stopped).
OPTIONAL = ["scale", "space_paper", "shortcut", "paper_shape"]
