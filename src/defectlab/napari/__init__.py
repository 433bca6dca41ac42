"""defectlab in napari: open any labeling export as an image with a Shapes layer per label,
predict with a model folder or a bioimage.io package, measure in nm, save back as CVAT or COCO.

The plugin is declared in ``napari.yaml`` (npe2) and registered by the ``napari.manifest``
entry point; install it with ``pip install 'defectlab[napari]'``. Nothing here imports napari
or Qt until napari calls it:

- reader (``File » Open``): a CVAT XML/zip, COCO, YOLO, VIA, LabelMe, Labelbox export, an
  ImageJ ROI set, a mask folder: the micrograph (with its pixel size as the layers' scale),
  one Shapes layer per label in the label's color, Points layers for point labels;
- writers (``File » Save Selected Layers``): ``.xml`` → CVAT for images 1.1, ``.json`` → COCO;
- dock widgets: *Predict defects* (classes and instances as Labels layers) and *Measure
  defects (nm)* (a table per label of the visible Shapes and predicted layers).

Coordinates: napari puts pixel centers at integer coordinates, defectlab at half-integers
(see :mod:`defectlab.napari._layers`); the conversion is exact.
"""

MANIFEST = "napari.yaml"
