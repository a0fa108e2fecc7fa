# Real models quantized with ANT (docs/models.md): the accuracy-per-format report.
# The zoo models ship trained (host/antq/model/data/zoo), and the digits CNN also quantized (ip-f,
# 4-bit, for boards without PyTorch); a changed recipe trains on first use (well under a minute
# each) and caches in build/models until `make models-ship` writes new shipped weights.

.PHONY: report report-quick models models-ship

REPORT_DIR ?= build/report

report: setup ## accuracy per format (PTQ, QAT, exported integer model) with plots into $(REPORT_DIR) (make docs writes docs/report)
	$(PY) -m antq report -o $(REPORT_DIR)

report-quick: setup ## the reduced report of `make test` (few QAT steps) into build/report
	$(PY) -m antq report --quick -o build/report

models: setup ## load (or, if the recipe changed, train) the zoo models: digits-cnn, digits-transformer
	$(PY) -c "from antq.model import zoo; [print(n, zoo.get(n)) for n in zoo.ZOO]" >/dev/null

models-ship: setup ## retrain the zoo models, write the shipped weights and the shipped digits-cnn .antq (host/antq/model/data/zoo)
	$(PY) -c "from antq.model import zoo; [print('wrote', zoo.ship(n)) for n in zoo.ZOO]"
	$(PY) -m antq quantize digits-cnn --config ip-f --bits 4 \
	  -o "$$($(PY) -c 'from antq.toolchain.paths import shipped_model; print(shipped_model())')"
