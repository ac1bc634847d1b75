import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads and lose a lot when the cores are shared."""
    from monosemantic.core.utils import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(autouse=True, scope="session")
def _timings_in_tmp(tmp_path_factory):
    """write_json puts wall-clock numbers in utils.TIMINGS_DIR; keep the tests' out of the repo's logs/."""
    from monosemantic.core import utils
    saved = utils.TIMINGS_DIR
    utils.TIMINGS_DIR = tmp_path_factory.mktemp("timings")
    yield
    utils.TIMINGS_DIR = saved


@pytest.fixture(scope="session")
def smoke_reference(tmp_path_factory):
    """One uninterrupted reproduction of the smoke profile in a scratch copy, shared by the slow tests
    (test_pipeline.py, test_kill_resume.py) so that each does not pay for its own."""
    from tools import regression
    root = tmp_path_factory.mktemp("smoke_reference")
    regression.reproduce(root)
    return root
