"""Running the whole product on one machine, on top of every layer: `manage.py demo` (the loop with no
browser, `demo.py`) and `manage.py serve` (the local server, optionally with a simulated CPO,
`server.py`). Nothing in smatch, ocpi, flexibility or settlement imports it."""
