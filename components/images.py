"""Which image each component runs in (the tag that matches the package version), and what
the launching components ask KFP to pass through to the pods they launch.

Override at compile time with TFKFP_IMAGE / TFKFP_GPU_IMAGE (or `tfkfp compile --image`).
"""

import os

from kfp import dsl

from tfkfp import __version__

CPU_IMAGE = os.environ.get("TFKFP_IMAGE", f"tfkfp:{__version__}")
GPU_IMAGE = os.environ.get("TFKFP_GPU_IMAGE", f"tfkfp-gpu:{__version__}")

# What a launching component (trainer, tuner with workers > 1) asks KFP to pass through to the
# pods it launches, as a dsl.TaskConfig (kfp 2.15+). apply_to_task: the task's own pod keeps
# each setting too, since with workers=1 the task itself trains (and the launcher needs its
# volumes and env to reach the store); the launcher's pod reserves the resources once more.
TASK_CONFIG_PASSTHROUGHS = [
    dsl.TaskConfigPassthrough(field=field, apply_to_task=True)
    for field in (
        dsl.TaskConfigField.RESOURCES,
        dsl.TaskConfigField.ENV,
        dsl.TaskConfigField.KUBERNETES_VOLUMES,
        dsl.TaskConfigField.KUBERNETES_NODE_SELECTOR,
        dsl.TaskConfigField.KUBERNETES_TOLERATIONS,
        dsl.TaskConfigField.KUBERNETES_AFFINITY,
    )
]
