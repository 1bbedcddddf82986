"""Export fine-tuned models for serving.

TensorFlow is imported only inside the export process, never by importing
this package; install it with `pip install "kerasft[tensorflow]"`.
"""

from kerasft._src.export.tf_serving import tf_serving

__all__ = ["tf_serving"]
