"""Export fine-tuned models for serving: TF Serving, ONNX and LiteRT.

TensorFlow is imported only inside the export processes, never by importing
this package; install what a format needs with `pip install
"kerasft[tensorflow]"` (TF Serving), `"kerasft[onnx]"` or
`"kerasft[litert]"`.
"""

from kerasft._src.export.formats import litert
from kerasft._src.export.formats import onnx
from kerasft._src.export.tf_serving import tf_serving

__all__ = ["litert", "onnx", "tf_serving"]
