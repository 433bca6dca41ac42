# defectlab: `make demo` and `make test` work on a fresh machine (Python >= 3.11).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo_out

.PHONY: install demo test bench clean chromium

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[torch,dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: synthetic labeled micrographs -> CVAT export -> check -> U-Net and Mask R-CNN data, overlays, measurements
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/defectlab synth $(DEMO)/export --n 6 --size 512 --seed 0
	$(BIN)/defectlab info $(DEMO)/export
	$(BIN)/defectlab convert $(DEMO)/export --to unet --out $(DEMO)/unet --stack
	$(BIN)/defectlab convert $(DEMO)/export --to maskrcnn --out $(DEMO)/maskrcnn
	$(BIN)/defectlab overlay $(DEMO)/export --out $(DEMO)/overlays --limit 3
	$(BIN)/defectlab check $(DEMO)/export --report $(DEMO)/check_report.html --fail-on never
	$(BIN)/defectlab measure $(DEMO)/export --pixel-size 0.5nm --out $(DEMO)/measure
	@echo
	@echo "Demo done. Look at:"
	@echo "  $(DEMO)/export/annotations.xml   synthetic CVAT export (images in $(DEMO)/export/images/)"
	@echo "  $(DEMO)/unet/                    masks/*.png (class index), images/, classes.json, images.npy, masks.npy"
	@echo "  $(DEMO)/maskrcnn/                images/, targets/*.npz (boxes, labels, masks), classes.json"
	@echo "  $(DEMO)/overlays/*.png           labels drawn over the micrographs"
	@echo "  $(DEMO)/check_report.html        labeling problems found by defectlab check (offline HTML)"
	@echo "  $(DEMO)/measure/                 per-defect sizes in nm, densities, size histograms (report.html)"

## chromium: the headless browser tests/qc/test_report_chromium.py renders the check report in
## (Debian's package; CI and the dev machine run as root and reach the Debian mirror). Checked on
## every `make test` (one `command -v`), so an uninstalled browser is noticed, not hidden by a stamp.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || { \
	  echo "make: could not install Debian's 'chromium' package, which tests/qc/test_report_chromium.py needs" >&2; \
	  echo "      (apt-get needs root and the Debian mirror). Install it yourself, e.g. 'sudo apt-get install chromium'," >&2; \
	  echo "      then run 'make test' again." >&2; exit 1; }

## test: the whole test suite (what CI runs); installs chromium for the HTML report test
test: $(STAMP) chromium
	$(BIN)/python -m pytest

## bench: CVAT XML -> U-Net masks + Mask R-CNN targets, ours vs the workshop notebook's approach
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_convert.py

clean:
	rm -rf $(DEMO) .pytest_cache .hypothesis build *.egg-info src/*.egg-info
