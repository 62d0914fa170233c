# Two commands: `make run` starts the server, `make test` runs lint, types and the whole suite.
# Both create .venv and install the project into it the first time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test test-all lint format clean cert

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,client,viz,notebooks,cluster]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chat-server $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# `make test`, then the I/O model x locking pairs it leaves out (tests/conftest.py).
test-all: test
	CHAT_MATRIX=rest $(BIN)/pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# IRC clients (irssi, WeeChat...) as well, on a second port (docs/irc.md):
#   make run ARGS="--irc-port 6667"
# A self-signed certificate for class use: serve with
#   make run ARGS="--tls-cert certs/cert.pem --tls-key certs/key.pem"
# and connect with: chat-client --cafile certs/cert.pem
cert:
	mkdir -p certs
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
	  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	  -keyout certs/key.pem -out certs/cert.pem
