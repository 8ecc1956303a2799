# The two commands: `make demo` (set up + run the whole retraining DAG) and `make test`.
.PHONY: setup demo test test-vertex test-fast test-numerics lock ui bench clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python scripts/demo.py

# Two test processes, whole files each (module fixtures are built once): the slow tests spend
# much of their time waiting on Airflow services and process start-up, so two share 2 cores
# well (docs/testing.md has the figures). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST = .venv/bin/python -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile

# The Vertex AI target's tests run in a second process of their own (they skip in the first):
# its provider cannot share the first one's python-dateutil and tenacity.
test: setup
	$(PYTEST)
	$(MAKE) --no-print-directory test-vertex

# The Vertex AI serving target's tests against the real Google provider, which cannot join the
# lock (docs/deploy.md): installed with --no-deps beside the venv, first on the path.
test-vertex: setup
	.venv/bin/pip install -q --no-deps --no-compile --upgrade --target build/vertex-extra -r tests/vertex_extra.txt
	PYTHONPATH=build/vertex-extra .venv/bin/python -m pytest tests/operators/test_vertex_ai_target.py -q -rs

test-fast: setup
	$(PYTEST) -m "not slow"

# The tests that run a model, with TensorFlow's oneDNN optimisations off and one intra-op
# thread: a verdict that hangs on numerics fails here before it lands (docs/testing.md).
test-numerics: setup
	TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1 OMP_NUM_THREADS=1 PYTHONHASHSEED=7 \
	  .venv/bin/python -m pytest tests -q -m runs_a_model

# After editing requirements*.txt: regenerate requirements.lock (what setup installs).
lock:
	bash scripts/lock.sh

ui: setup
	bash scripts/ui.sh

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b; done

clean:
	rm -rf .airflow demo_output .pytest_cache
