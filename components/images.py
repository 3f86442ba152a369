"""Which image each component runs in: the tag that matches the package version.

Override at compile time with TFKFP_IMAGE / TFKFP_GPU_IMAGE (or `tfkfp compile --image`).
"""

import os

from tfkfp import __version__

CPU_IMAGE = os.environ.get("TFKFP_IMAGE", f"tfkfp:{__version__}")
GPU_IMAGE = os.environ.get("TFKFP_GPU_IMAGE", f"tfkfp-gpu:{__version__}")
