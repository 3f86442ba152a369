"""`tfkfp images build`: the CPU or GPU image, built with the docker SDK (tfkfp.images)."""

from __future__ import annotations

import argparse


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    images_sub = p.add_subparsers(dest="images_command", required=True)
    p = images_sub.add_parser("build", help="build Dockerfile.cpu (or .gpu) with the docker SDK")
    p.add_argument("--gpu", action="store_true", help="build the GPU image (tensorflow[and-cuda])")
    p.add_argument("--tag", help="image tag (default: the tag the components use, tfkfp:<version>)")
    p.add_argument("--push", action="store_true", help="push the tag after building")
    p.add_argument("--base-image", help="BASE_IMAGE build argument (default: python:3.11-slim)")


def handle(name: str, args: argparse.Namespace) -> int:
    from tfkfp import images

    print(images.build(args.gpu, args.tag, args.base_image, args.push).tag)
    return 0
