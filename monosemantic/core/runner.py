"""One way to run a stage: `python -m stages.NAME [ARGS]`, from the repository root (as DVC runs them).

A stage script is a few lines: a `main(params, *args)` decorated with `@stage("RUN")` (the names of its
positional arguments; `[RUN]` for an optional one) and `if __name__ == "__main__": main.run()`. The runner
checks the arguments, loads params.yaml strictly (config.load_params: one message for every bad value, before
any compute) and turns the pipeline's known errors (utils.PipelineError and its subclasses, a missing input
file) into one clear message and exit status 2, without a traceback.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Callable

from monosemantic.core import paths
from monosemantic.core.config import load_params
from monosemantic.core.utils import PipelineError, fail


def stage(*arg_names: str) -> Callable:
    """Decorate a stage's main(params, *args). Argument names in brackets ("[RUN]") are optional."""
    required = [a for a in arg_names if not a.startswith("[")]

    def wrap(main: Callable) -> Callable:
        module = main.__module__ if main.__module__ != "__main__" else _script_module()
        usage = f"usage: python -m {module} {' '.join(arg_names)}".rstrip()

        @functools.wraps(main)
        def run(argv: list[str] | None = None):
            argv = sys.argv[1:] if argv is None else list(argv)
            if argv and argv[0] in ("-h", "--help"):
                print((inspect.getmodule(main).__doc__ or "").strip() + "\n\n" + usage)
                raise SystemExit(0)
            if not len(required) <= len(argv) <= len(arg_names):
                fail(usage)
            try:
                return main(load_params(paths.PARAMS), *argv)
            except (PipelineError, FileNotFoundError) as e:
                fail(str(e))

        main.run = run
        return main

    return wrap


def _script_module() -> str:
    """The dotted name of the script run as __main__ (stages.NAME under python -m)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return spec.name if spec is not None else sys.argv[0]
