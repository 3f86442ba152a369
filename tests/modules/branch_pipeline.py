"""A pipeline with branches and a display name, as the example pipelines have (no TensorFlow).

`check` says whether the data is valid; the training branch (`train`, then `push` behind a
nested gate) runs when it is, `data-not-valid` when it is not. `train` has a display name, as
the taxi pipeline's GPU trainer does: what a local run shows for skipped branches and names.
"""

from kfp import dsl


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def check(valid: bool) -> bool:
    return valid


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def train() -> bool:
    return False  # not blessed: the push branch is skipped


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def push():
    pass


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def data_not_valid():
    pass


@dsl.pipeline(name="branch-demo")
def branch_demo(valid: bool = True):
    checked = check(valid=valid)
    with dsl.If(checked.output == True):  # noqa: E712 (compiles to a CEL condition)
        trained = train().set_display_name("train (named)")
        with dsl.If(trained.output == True):  # noqa: E712
            push()
    with dsl.Else():
        data_not_valid()
