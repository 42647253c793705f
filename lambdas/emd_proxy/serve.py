"""The Lambda's process (lambdas/run.sh): uvicorn's own command line, with the
garbage collector off from the first import rather than from emd_proxy.main's (uvicorn
imports asyncio, logging and click first: about 6 ms of collections on a cold start).
main.create_app turns it back on once the app is built."""

import gc
import sys


def main() -> None:
    gc.disable()
    from uvicorn.main import main as uvicorn_main

    uvicorn_main(args=sys.argv[1:], prog_name="uvicorn")


if __name__ == "__main__":
    main()
