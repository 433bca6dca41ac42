# defectlab: `make demo` and `make test` work on a fresh machine (Python >= 3.11).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo_out

.PHONY: install demo test bench bench-nnunet-env bench-stardist-env clean chromium

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[torch,dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: synthetic labeled micrographs -> CVAT export -> check -> training data, overlays, measurements -> tiles -> U-Net -> predictions, pre-labels, scores; a synthetic in-situ video -> tracks and kinetics
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/defectlab synth $(DEMO)/export --n 6 --size 512 --seed 0
	$(BIN)/defectlab info $(DEMO)/export
	$(BIN)/defectlab convert $(DEMO)/export --to unet --out $(DEMO)/unet --stack
	$(BIN)/defectlab convert $(DEMO)/export --to maskrcnn --out $(DEMO)/maskrcnn
	$(BIN)/defectlab overlay $(DEMO)/export --out $(DEMO)/overlays --limit 3
	$(BIN)/defectlab check $(DEMO)/export --report $(DEMO)/check_report.html --fail-on never
	$(BIN)/defectlab measure $(DEMO)/export --pixel-size 0.5nm --out $(DEMO)/measure
	$(BIN)/defectlab prepare $(DEMO)/export --tile 256 --stride 128 --split 0.8,0.2,0 --augment flip,rot90 --to unet --out $(DEMO)/tiles
	$(BIN)/defectlab train unet $(DEMO)/tiles/train --out $(DEMO)/model --epochs 8 --steps-per-epoch 40 --lr 0.002
	$(BIN)/defectlab synth $(DEMO)/new --n 2 --size 512 --seed 1
	$(BIN)/defectlab predict $(DEMO)/model $(DEMO)/new/images/*.png --out $(DEMO)/predictions --prelabels cvat
	$(BIN)/defectlab evaluate $(DEMO)/predictions/prelabels/annotations.xml $(DEMO)/new --pixel-size 0.5nm --out $(DEMO)/scores
	$(BIN)/defectlab synth-video $(DEMO)/video --frames 40 --size 256 --defects 20 --seed 0
	$(BIN)/defectlab track $(DEMO)/video --pixel-size 0.5nm --frame-interval 0.5s --out $(DEMO)/tracks
	@echo
	@echo "Demo done. Look at:"
	@echo "  $(DEMO)/export/annotations.xml   synthetic CVAT export (images in $(DEMO)/export/images/)"
	@echo "  $(DEMO)/unet/                    masks/*.png (class index), images/, classes.json, images.npy, masks.npy"
	@echo "  $(DEMO)/maskrcnn/                images/, targets/*.npz (boxes, labels, masks), classes.json"
	@echo "  $(DEMO)/overlays/*.png           labels drawn over the micrographs"
	@echo "  $(DEMO)/check_report.html        labeling problems found by defectlab check (offline HTML)"
	@echo "  $(DEMO)/measure/                 per-defect sizes in nm, densities, size histograms (index.html)"
	@echo "  $(DEMO)/tiles/                   256 px training tiles with train/val splits and manifest.json"
	@echo "  $(DEMO)/model/                   a small U-Net trained for ~6 CPU minutes (config.json, weights, training curve)"
	@echo "  $(DEMO)/predictions/             masks, instance TIFFs, overlays and CVAT pre-labels for 2 new micrographs"
	@echo "  $(DEMO)/scores/index.html        predictions vs the new images' true labels: IoU, F1, size errors"
	@echo "  $(DEMO)/video/ -> $(DEMO)/tracks/ an in-situ video's defects linked over 40 frames: tracks, growth, fates,"
	@echo "                                   CVAT track pre-labels, overlay.gif, index.html (scored against the true tracks)"

## chromium: the headless browser tests/qc/test_report_chromium.py renders the check report in
## (Debian's package; CI and the dev machine run as root and reach the Debian mirror). Checked on
## every `make test` (one `command -v`), so an uninstalled browser is noticed, not hidden by a stamp.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || { \
	  echo "make: could not install Debian's 'chromium' package, which tests/qc/test_report_chromium.py needs" >&2; \
	  echo "      (apt-get needs root and the Debian mirror). Install it yourself, e.g. 'sudo apt-get install chromium'," >&2; \
	  echo "      then run 'make test' again." >&2; exit 1; }

## test: the whole test suite (what CI runs); installs chromium for the HTML report test. Then the
## tests that predict once more with DEFECTLAB_ENGINE=torch ('auto' = PyTorch, not ONNX Runtime).
PREDICT_TESTS := tests/dl tests/test_api.py src/defectlab/dl src/defectlab/api.py \
	tests/batch/test_batch_dask.py::test_predict_on_a_local_cluster_loads_the_model_once_per_worker
test: $(STAMP) chromium
	$(BIN)/python -m pytest
	DEFECTLAB_ENGINE=torch $(BIN)/python -m pytest $(PREDICT_TESTS)

## bench: CVAT XML -> U-Net masks + Mask R-CNN targets, ours vs the workshop notebook's approach
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_convert.py

## bench-nnunet-env: nnU-Net v2, the peer of benchmarks/bench_auto.py --nnunet, in a venv of its own
## (.venv-nnunet; never part of install/test). torch pinned to the project's, so nnunetv2 cannot swap it.
NNUNET_VENV := .venv-nnunet
NNUNET_STAMP := $(NNUNET_VENV)/.installed-stamp
# $(call peer_venv,VENV,REQUIREMENTS): a benchmark peer's own venv, stamped when complete
define peer_venv
	$(PY) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet $(2)
	touch $(1)/.installed-stamp
endef
$(NNUNET_STAMP):
	$(call peer_venv,$(NNUNET_VENV),'nnunetv2==2.8.1' 'torch==2.14.1')

bench-nnunet-env: $(NNUNET_STAMP)

## bench-stardist-env: StarDist's own TensorFlow implementation, the peer of benchmarks/bench_instances.py
## --stardist-python, in a venv of its own (.venv-stardist, ~1.5 GB; never part of install/test).
STARDIST_VENV := .venv-stardist
STARDIST_STAMP := $(STARDIST_VENV)/.installed-stamp
$(STARDIST_STAMP):
	$(call peer_venv,$(STARDIST_VENV),'stardist==0.9.2' 'tensorflow-cpu==2.21.0')

bench-stardist-env: $(STARDIST_STAMP)

clean:
	rm -rf $(DEMO) .pytest_cache .hypothesis build *.egg-info src/*.egg-info
