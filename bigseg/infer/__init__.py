"""Inference: seam-free, block-wise sliding-window prediction with one model per worker.

``predict(vol, model, ...)`` returns an ``xarray.Dataset`` (labels, optional probabilities and
uncertainty) equal to MONAI's whole-volume ``sliding_window_inference`` for any chunking, with
each window evaluated once; ``write_prediction(ds, image_path)`` stores it in the OME-Zarr's
``labels/`` group; ``segment(vol, "default")`` loads a model and normalises its input the
way the model was trained before predicting; ``temporal=N`` (a series) averages each scan's
probabilities with its neighbours' (``smooth_over_time``). See ``_predict.py`` for the overlap-add graph.
"""

from ._model import cpu_streams, reset_worker_stats, worker_stats
from ._predict import estimate_footprint, predict
from ._segment import segment
from ._temporal import smooth_over_time
from ._write import write_prediction

__all__ = ["predict", "segment", "write_prediction", "estimate_footprint", "worker_stats", "reset_worker_stats", "cpu_streams",
           "smooth_over_time"]
