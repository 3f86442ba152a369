"""`tfkfp images build`: the CPU or GPU image, built with the docker SDK (tfkfp.images)."""

from __future__ import annotations

import argparse


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    images_sub = p.add_subparsers(dest="images_command", required=True)
    p = images_sub.add_parser("build", help="build Dockerfile.cpu (or .gpu) with the docker SDK")
    p.add_argument("--gpu", action="store_true", help="build the GPU image (tensorflow[and-cuda])")
    p.add_argument("--tag", help="image tag (default: the tag the components use, tfkfp:<version>)")
    p.add_argument("--push", action="store_true", help="push the tag after building")
    p.add_argument(
        "--base-image",
        help="BASE_IMAGE build argument (default: python:3.11-slim; with --requirements: the "
        "tfkfp image to extend, default the one the components use)",
    )
    p.add_argument(
        "--requirements",
        metavar="FILE",
        help="build an image FROM the tfkfp image with these pip packages added, resolved "
        "against tfkfp's pinned versions (default tag: <image>-user:<version>)",
    )


def handle(name: str, args: argparse.Namespace) -> int:
    from tfkfp import images

    if args.requirements:
        built = images.build_with_requirements(
            args.requirements, args.gpu, args.tag, args.base_image, args.push
        )
    else:
        built = images.build(args.gpu, args.tag, args.base_image, args.push)
    print(built.tag)
    return 0
