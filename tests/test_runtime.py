import contextlib
import io
import logging

from tfkfp.containers.runtime import setup_logging


def test_log_records_reach_the_stderr_of_the_moment_after_the_first_was_closed():
    # A process whose stderr was redirected when logging was set up (a test's capture, a
    # wrapper) later logs with that stream closed: the record goes to the stderr of the
    # moment, never to logging's own "--- Logging error ---" traceback.
    first = io.StringIO()
    with contextlib.redirect_stderr(first):
        setup_logging()
        logging.getLogger("tfkfp.test").warning("first record")
    first.close()
    later = io.StringIO()
    with contextlib.redirect_stderr(later):
        logging.getLogger("tfkfp.test").warning("later record")
    text = later.getvalue()
    assert "later record" in text
    assert "Logging error" not in text and "Traceback" not in text
