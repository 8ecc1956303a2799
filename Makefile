# The two commands: `make demo` (set up + run the whole retraining DAG) and `make test`.
.PHONY: setup demo test test-fast ui bench clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python scripts/demo.py

test: setup
	.venv/bin/python -m pytest tests -q

test-fast: setup
	.venv/bin/python -m pytest tests -q -m "not slow"

ui: setup
	bash scripts/ui.sh

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b; done

clean:
	rm -rf .airflow demo_output .pytest_cache
