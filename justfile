# Recipes for people who have `just`; each one is a script under scripts/ that works
# without it.

# Run the service locally with demo data (quick start 1).
run:
    scripts/run

# Formatting, clippy, docs and every test against a local PostgreSQL (quick start 2).
test:
    scripts/test

# What CI runs.
ci:
    bash .ci/run

# Start the local development PostgreSQL and print its URL.
db:
    scripts/pg.sh url dev

# Stop the local PostgreSQL clusters.
db-stop:
    scripts/pg.sh stop dev
    scripts/pg.sh stop test

# The endpoint against pgbench replaying its own statements (writes target/bench/report.md).
bench:
    scripts/bench/run

# The fuzz targets (labels, HTTP layer, fixture format) with many cases, time-bounded.
fuzz:
    scripts/fuzz

# schemathesis against the served OpenAPI document (installs it from PyPI on first use).
soak:
    scripts/soak
