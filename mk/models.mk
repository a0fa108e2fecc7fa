# Real models quantized with ANT (docs/models.md): the accuracy-per-format report.
# The zoo models train on first use (well under a minute each) and are cached in build/models.

.PHONY: report report-quick models

REPORT_DIR ?= docs/report

report: setup ## accuracy per format (PTQ, QAT, exported integer model) with plots into $(REPORT_DIR)
	$(PY) -m antq report -o $(REPORT_DIR)

report-quick: setup ## the reduced report of `make test` (few QAT steps) into build/report
	$(PY) -m antq report --quick -o build/report

models: setup ## train (or load the cached) zoo models: digits-cnn, digits-transformer
	$(PY) -c "from antq import models; [print(n, models.get(n)) for n in models.ZOO]" >/dev/null
