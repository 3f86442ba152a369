"""`python -m tfkfp.containers.train.launch worker <stage> <json>`: what each launched pod runs."""

import sys

from tfkfp.containers.train.launch.worker import main

main(sys.argv[1:])
