# Two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The modules setup.py compiles with mypyc (zabby._compiled.COMPILED_MODULES; a test
# keeps the two lists equal): editing one reinstalls, which rebuilds its extension.
COMPILED_SRC := src/zabby/wire/primitives.py src/zabby/wire/protocol.py \
	src/zabby/tree/datatree.py src/zabby/tree/znode.py \
	src/zabby/tree/acl.py src/zabby/server/session.py \
	src/zabby/server/metrics.py src/zabby/tree/watches.py \
	src/zabby/wire/records.py src/zabby/tree/txn_records.py \
	src/zabby/consensus/message_records.py src/zabby/storage/snapcodec.py \
	src/zabby/tree/snapshot.py src/zabby/tree/digest.py \
	src/zabby/tree/txn.py src/zabby/storage/logscan.py \
	src/zabby/tree/paths.py src/zabby/server/latency.py \
	src/zabby/server/connection.py src/zabby/server/pipeline.py \
	src/zabby/server/core.py src/zabby/consensus/peer.py \
	src/zabby/server/durability.py src/zabby/server/peers.py \
	src/zabby/server/ensemble.py src/zabby/consensus/messages.py \
	src/zabby/storage/txnlog.py src/zabby/server/native_log.py
# setup.py's one hand-written C extension (the log's writer thread, server/native_log.py)
NATIVE_SRC := src/zabby/_logio.c

.PHONY: serve test lint clean venv records

$(STAMP): pyproject.toml setup.py src/zabby/_compiled.py $(COMPILED_SRC) $(NATIVE_SRC)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	@$(BIN)/python -c "import zabby; print('zabby:', zabby.build_info())"
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/zabby serve

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# wire/records.py, tree/txn_records.py and consensus/message_records.py are generated
# from wire/record_spec.py, tree/txn_spec.py and consensus/message_spec.py (a test
# fails while one is stale)
records: $(STAMP)
	$(BIN)/python -m zabby.cli.gen_records

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) zabby-data build src/*.egg-info src/zabby/_build.json
	find src -name '*.so' -delete
